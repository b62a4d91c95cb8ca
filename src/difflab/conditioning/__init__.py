"""Conditions, condition dropout and guidance."""

from difflab.conditioning.classifier_guidance import Classifier, classifier_guidance
from difflab.conditioning.guidance import classifier_free_guidance, conditioned, mix
from difflab.core.condition import NULL_LABEL, Condition, drop_condition
from difflab.parameterization.prediction import DenoiseFn

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
