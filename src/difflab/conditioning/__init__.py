"""Conditions, condition dropout and guidance."""

from difflab.conditioning.classifier_guidance import Classifier, classifier_guidance
from difflab.conditioning.condition import NULL_LABEL, Condition, drop_condition
from difflab.conditioning.guidance import (
    DenoiseFn,
    classifier_free_guidance,
    conditioned,
    mix,
)

__all__ = [
    "NULL_LABEL",
    "Classifier",
    "Condition",
    "DenoiseFn",
    "classifier_free_guidance",
    "classifier_guidance",
    "conditioned",
    "drop_condition",
    "mix",
]
