"""What every layer shares: Condition, the errors, the name -> component Registry, hashing."""

from difflab.core.condition import NULL_LABEL, Condition, drop_condition
from difflab.core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DifflabError,
    TrainingError,
)
from difflab.core.registry import Registry

__all__ = [
    "NULL_LABEL",
    "CheckpointError",
    "Condition",
    "ConfigError",
    "DataError",
    "DifflabError",
    "Registry",
    "TrainingError",
    "drop_condition",
]
