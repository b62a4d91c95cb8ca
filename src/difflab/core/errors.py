"""Typed errors. The CLI prints their message on one line and exits non-zero."""


class DifflabError(Exception):
    """Base class for every error difflab raises on purpose (bad input, not bugs)."""


class ConfigError(DifflabError, ValueError):
    """A config key, type or value is wrong; the message names the key."""


class DataError(DifflabError):
    """A data folder or file is missing or unreadable; the message names the path."""


class CheckpointError(DifflabError):
    """A checkpoint is missing, incomplete, corrupt or unsafe; the message names the file."""


class TrainingError(DifflabError):
    """Training cannot go on (too many non-finite steps, too many bad samples)."""


class RunFileError(DifflabError, OSError):
    """A file cannot be written (disk full, read-only, not a folder); the message names the
    file and the free space there."""
