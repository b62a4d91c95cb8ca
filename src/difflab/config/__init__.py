"""The typed run configuration: schema and checks, parsing from dicts and overrides, recipes,
network plug-ins."""
