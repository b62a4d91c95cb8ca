"""Integrations with other libraries' models, each behind an extra (`pip install 'difflab[sd]'`)."""
