"""Optimizer memory of a LoRA fine-tune of SD v1's UNet against a full fine-tune, counted.

python bench/sd_lora_memory.py [--rank 4]

Builds SD v1's UNet2DConditionModel (its unet/config.json, 859.5M parameters) on the meta
device (no memory, no weights), adds difflab's LoRA adapter (model.lora defaults: diffusers'
attention projections to_q, to_k, to_v, to_out.0) and counts what AdamW's state dict holds:
exp_avg and exp_avg_sq, each the shape and dtype of a trained parameter, and one float32 step
per parameter. The LoRA count is also derived by hand, rank * (in + out) per target Linear,
and the two must agree. See bench/README.md ("Stable Diffusion LoRA memory").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from difflab.config.schema import LoraConfig  # noqa: E402
from difflab.integrations.stable_diffusion.lora import add_lora  # noqa: E402
from sd_speed_steps import FULL, make_unet  # noqa: E402  (bench/ is not a package)


def adamw_state_bytes(params: list[nn.Parameter]) -> int:
    """Bytes of AdamW's state tensors: two moments like each parameter, a float32 step each."""
    return sum(2 * p.numel() * p.element_size() + 4 for p in params)


def analytic_lora_count(unet: nn.Module, lora: LoraConfig) -> int:
    """rank * (in + out) for every Linear whose name ends in a target (A: r x in, B: out x r)."""
    return sum(
        lora.rank * (m.in_features + m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, nn.Linear) and any(name.endswith(f".{t}") for t in lora.targets)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=4)
    rank = parser.parse_args().rank
    unet = make_unet(FULL, torch.device("meta"))
    full = list(unet.parameters())
    lora = LoraConfig(rank=rank)
    expected = analytic_lora_count(unet, lora)
    with torch.device("meta"):
        add_lora(unet, lora)
    trained = [p for p in unet.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trained) == expected, "peft's adapter is not rank*(in+out)"
    rows = [("full fine-tune", full), (f"LoRA rank {rank}", trained)]
    print("| run | trained parameters | AdamW state | (MiB) |\n|---|---:|---:|---:|")
    for name, params in rows:
        size = adamw_state_bytes(params)
        print(f"| {name} | {sum(p.numel() for p in params):,} | {size:,} B | {size / 2**20:,.1f} |")
    ratio = adamw_state_bytes(full) / adamw_state_bytes(trained)
    saved = adamw_state_bytes(full) - adamw_state_bytes(trained)
    print(f"\nLoRA holds {ratio:,.0f}x less optimizer state: {saved / 2**30:.2f} GiB less")


if __name__ == "__main__":
    main()
