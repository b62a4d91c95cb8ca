"""LiT (Zhai et al. 2022): difflab's image encoder for unCLIP, trained contrastively against a
locked text encoder on a captioned dataset, scored by image-to-caption retrieval on held-out
caption templates, and cached like the evaluation classifier."""

from difflab.lit.cache import cached_lit, lit_dir
from difflab.lit.retrieval import retrieval_accuracy
from difflab.lit.training import LiTSettings, train_lit

__all__ = ["LiTSettings", "cached_lit", "lit_dir", "retrieval_accuracy", "train_lit"]
