"""A tiny random transformers CLIP folder (CLIPModel + a word-level tokenizer), built offline."""

from __future__ import annotations

from pathlib import Path

import torch

TEXT = (
    "a the of photo handwritten digit number small picture drawing sketch image one two three "
    "four five six seven eight nine zero cat dog"
)
WORDS = (*TEXT.split(), *"0123456789")


def save_tiny_clip(folder: Path, *, projection_dim: int = 8, image_size: int = 16) -> Path:
    """CLIPModel with one layer per tower and a word-level tokenizer (end token appended, as
    CLIP's), saved to folder; the weights are seeded, so two calls give the same folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<eos>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", special_tokens=[("<eos>", vocab["<eos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    text = {
        "vocab_size": len(vocab),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "eos_token_id": vocab["<eos>"],
        "pad_token_id": vocab["<pad>"],
        "bos_token_id": vocab["<pad>"],
    }
    vision = {
        "image_size": image_size,
        "patch_size": image_size // 2,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
