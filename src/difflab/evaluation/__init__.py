"""Evaluation: FID, KID and classifier accuracy of generated images.

`evaluate(images, labels, reference=..., metrics=[...], extractor=..., classifier=...)` is the
entry point and `hint_fidelity(images, hints, HintSetting(...))` a ControlNet's hint fidelity;
the pieces (Frechet distance, KID, feature extractors, reference statistics cache, the difflab
classifier and its training, the map re-extractor) are public for scripts and the CLI.
"""

from difflab.evaluation.classifier import (
    Classifier,
    ClassifierConfig,
    load_classifier,
    save_classifier,
    weights_fingerprint,
)
from difflab.evaluation.classifier_cache import cache_root, cached_classifier
from difflab.evaluation.classifier_training import (
    classifier_accuracy,
    noisy_accuracy,
    predict,
    train_classifier,
)
from difflab.evaluation.depth_error import scale_invariant_log_rmse
from difflab.evaluation.edge_f1 import edge_f1
from difflab.evaluation.features import (
    INCEPTION_FEATURES,
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
)
from difflab.evaluation.frechet import (
    FeatureStatistics,
    RunningStatistics,
    feature_statistics,
    frechet_distance,
)
from difflab.evaluation.hint_fidelity import HINT_METRICS, HintSetting, hint_fidelity
from difflab.evaluation.kid import KIDResult, kernel_inception_distance, mmd2_unbiased
from difflab.evaluation.map_network import MapNetwork, load_map_network, save_map_network
from difflab.evaluation.map_network_training import cached_map_network, train_map_network
from difflab.evaluation.mean_iou import mean_iou
from difflab.evaluation.metrics import METRICS, EvalOptions, Metric, evaluate
from difflab.evaluation.reference import (
    ReferenceStatistics,
    compute_statistics,
    reference_key,
    reference_statistics,
)
from difflab.evaluation.samples import load_samples_folder, load_samples_npz, save_samples_npz

__all__ = [
    "HINT_METRICS",
    "HintSetting",
    "MapNetwork",
    "cached_map_network",
    "edge_f1",
    "hint_fidelity",
    "load_map_network",
    "mean_iou",
    "save_map_network",
    "scale_invariant_log_rmse",
    "train_map_network",
    "INCEPTION_FEATURES",
    "METRICS",
    "Classifier",
    "ClassifierConfig",
    "ClassifierFeatures",
    "EvalOptions",
    "FeatureExtractor",
    "FeatureStatistics",
    "InceptionFeatures",
    "KIDResult",
    "Metric",
    "ReferenceStatistics",
    "RunningStatistics",
    "cache_root",
    "cached_classifier",
    "classifier_accuracy",
    "compute_statistics",
    "evaluate",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "load_classifier",
    "load_samples_folder",
    "load_samples_npz",
    "mmd2_unbiased",
    "noisy_accuracy",
    "predict",
    "reference_key",
    "reference_statistics",
    "save_classifier",
    "save_samples_npz",
    "train_classifier",
    "weights_fingerprint",
]
