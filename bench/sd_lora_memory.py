"""Optimizer memory of a LoRA fine-tune of SD v1's UNet (and text encoder) against a full
fine-tune, counted.

python bench/sd_lora_memory.py [--rank 4]

Builds SD v1's UNet2DConditionModel (its unet/config.json, 859.5M parameters) on the meta
device (no memory, no weights), adds difflab's LoRA adapter (model.lora defaults: diffusers'
attention projections to_q, to_k, to_v, to_out.0) and counts what AdamW's state dict holds:
exp_avg and exp_avg_sq, each the shape and dtype of a trained parameter, and one float32 step
per parameter. The LoRA count is also derived by hand, rank * (in + out) per target Linear,
and the two must agree. With model.lora.text_encoder the CLIP ViT-L/14 text model of SD v1
(text_encoder/config.json's sizes, 123.1M parameters, also on the meta device) gets adapters of
the same rank on q_proj, k_proj, v_proj and out_proj. See bench/README.md ("Stable Diffusion
LoRA memory").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from difflab.config.schema import LoraConfig  # noqa: E402
from difflab.integrations.stable_diffusion.lora import (  # noqa: E402
    TEXT_ENCODER_TARGETS,
    add_lora,
    add_text_encoder_lora,
)
from sd_speed_steps import FULL, make_unet  # noqa: E402  (bench/ is not a package)


def adamw_state_bytes(params: list[nn.Parameter]) -> int:
    """Bytes of AdamW's state tensors: two moments like each parameter, a float32 step each."""
    return sum(2 * p.numel() * p.element_size() + 4 for p in params)


def analytic_lora_count(model: nn.Module, rank: int, targets) -> int:
    """rank * (in + out) for every Linear whose name ends in a target (A: r x in, B: out x r)."""
    return sum(
        rank * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name.endswith(f".{t}") for t in targets)
    )


def make_text_encoder() -> nn.Module:
    """SD v1's text encoder (CLIP ViT-L/14's text model) on the meta device."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
    )
    with torch.device("meta"):
        return CLIPTextModel(config)


def adapted(model: nn.Module, lora: LoraConfig, add, targets) -> list[nn.Parameter]:
    """The trainable parameters of model with difflab's adapter, checked against the count."""
    expected = analytic_lora_count(model, lora.rank, targets)
    with torch.device("meta"):
        add(model, lora)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trained) == expected, "peft's adapter is not rank*(in+out)"
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=4)
    rank = parser.parse_args().rank
    unet, text_encoder = make_unet(FULL, torch.device("meta")), make_text_encoder()
    full, full_text = list(unet.parameters()), list(text_encoder.parameters())
    lora = LoraConfig(rank=rank, text_encoder=True)
    trained = adapted(unet, lora, add_lora, lora.targets)
    trained_text = adapted(text_encoder, lora, add_text_encoder_lora, TEXT_ENCODER_TARGETS)
    rows = [
        ("full fine-tune, UNet", full),
        ("full fine-tune, UNet + text encoder", full + full_text),
        (f"LoRA rank {rank}, UNet", trained),
        (f"LoRA rank {rank}, UNet + text encoder", trained + trained_text),
    ]
    print("| run | trained parameters | AdamW state | (MiB) |\n|---|---:|---:|---:|")
    for name, params in rows:
        size = adamw_state_bytes(params)
        print(f"| {name} | {sum(p.numel() for p in params):,} | {size:,} B | {size / 2**20:,.1f} |")
    ratio = adamw_state_bytes(full) / adamw_state_bytes(trained)
    saved = adamw_state_bytes(full) - adamw_state_bytes(trained)
    print(f"\nLoRA holds {ratio:,.0f}x less optimizer state: {saved / 2**30:.2f} GiB less")
    both = adamw_state_bytes(trained + trained_text)
    print(f"with the text encoder's adapter: {adamw_state_bytes(full) / both:,.0f}x less")


if __name__ == "__main__":
    main()
