"""Text-to-image sampling of a Stable Diffusion export (optimum's ONNX or optimum-intel's
OpenVINO layout) without torch:
prompts -> tokenizer/tokenizer.json (the `tokenizers` library, not transformers) ->
text_encoder -> a numpy sampler over the unet with classifier-free guidance against the
negative prompt (default: the empty prompt, SD's null text) -> latents -> vae_decoder.

    pipe = PromptPipeline.open("runs/sd/export/onnx")
    z = pipe.latents(["a cat"], x_T)          # x_T [N, 4, h, w] standard normal float32
    images = pipe.decode(z)                   # [N, 3, H, W] in [-1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from difflab.core.errors import ConfigError
from difflab.deploy.backends import Graph, open_graph, require
from difflab.deploy.generate import checked_sampler, guided_feeds
from difflab.deploy.samplers import NoiseFn
from difflab.deploy.spec import ExportSpec, Grid, read_spec

PIPELINE = "stable-diffusion"  # export.json's "pipeline" of a Stable Diffusion export
TEXT_GRAPHS = ("text_encoder", "unet", "vae_decoder")
UNET_INPUTS = ("sample", "timestep", "encoder_hidden_states")  # optimum's names


def read_tokenizer(spec: ExportSpec):
    """The export's tokenizer (pads and truncates to its max_length) as a tokenizers.Tokenizer."""
    tokenizers = require("tokenizers")
    file = spec.folder / spec.data["tokenizer"]
    if not file.is_file():
        raise ConfigError(f"{file} does not exist; rerun difflab export")
    return tokenizers.Tokenizer.from_file(str(file))


@dataclass(frozen=True)
class PromptPipeline:
    """The graphs and tokenizer of a Stable Diffusion export (ONNX or OpenVINO, in optimum's
    layouts), with its export.json."""

    spec: ExportSpec
    tokenizer: object  # tokenizers.Tokenizer
    graphs: dict[str, Graph]

    @classmethod
    def open(
        cls, folder: Path | str, backend: str = "onnxruntime", threads: int | None = None
    ) -> PromptPipeline:
        """The export in folder under backend; ConfigError if it is not a Stable Diffusion
        export."""
        spec = read_spec(folder)
        if spec.data.get("pipeline") != PIPELINE:
            raise ConfigError(f"{spec.folder} is not a Stable Diffusion export (export.json)")
        precisions = spec.data.get("precisions", {})  # an fp32 graph infers in f32
        graphs = {k: open_graph(spec.path(k), backend, precision=precisions.get(k, "fp32"),
                                threads=threads) for k in TEXT_GRAPHS}  # fmt: skip
        return cls(spec=spec, tokenizer=read_tokenizer(spec), graphs=graphs)

    def token_ids(self, prompts: Sequence[str]) -> np.ndarray:
        """Token ids [N, max_length] int64: start token, prompt, end token, end-token padding."""
        rows = [e.ids for e in self.tokenizer.encode_batch(list(prompts))]
        length = self.spec.data["max_length"]
        if any(len(row) != length for row in rows):
            raise ConfigError(f"{self.spec.data['tokenizer']} does not pad to {length} tokens")
        return np.array(rows, dtype=np.int64).reshape(len(rows), length)

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        """The text encoder's last hidden states [N, max_length, D] of prompts."""
        ids = self.token_ids(prompts)
        return self.graphs["text_encoder"]({"input_ids": ids}).astype(np.float32)

    def latents(
        self,
        prompts: Sequence[str],
        x_T: np.ndarray,
        *,
        guidance: float | None = None,
        negative_prompt: str | None = None,
        sampler: str | None = None,
        options: dict[str, float] | None = None,
        grid: Grid | None = None,
        noise: NoiseFn | None = None,
    ) -> np.ndarray:
        """Latents [N, c, h, w] of prompts[i] from x_T[i]; the settings default to the run's
        (export.json's sample section and grid)."""
        sample = self.spec.data["sample"]
        guidance = sample["guidance"] if guidance is None else guidance
        negative = self.spec.data["negative_prompt"] if negative_prompt is None else negative_prompt
        sampler = sample["sampler"] if sampler is None else sampler
        options = sample["options"] if options is None else options
        run_sampler = checked_sampler(sampler, options)
        grid = self.spec.grid if grid is None else grid
        text = self.encode(prompts)
        null = np.broadcast_to(self.encode([negative]), text.shape)
        denoise = guided_feeds(
            self.graphs["unet"],
            grid,
            self.spec.data["parameterization"],
            cond={UNET_INPUTS[2]: text},
            null={UNET_INPUTS[2]: np.ascontiguousarray(null)},
            guidance=guidance,
            names=UNET_INPUTS[:2],
        )
        return run_sampler(denoise, x_T, grid, noise=noise, **options)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images [N, C, H, W] in [-1, 1] of difflab latents z: the VAE decoder of
        z / scaling_factor + shift_factor (difflab.latents.VAECodec.decode)."""
        vae = self.spec.data["vae"]
        e = z / np.float32(vae["scaling_factor"]) + np.float32(vae["shift_factor"])
        return self.graphs["vae_decoder"]({"latent_sample": e.astype(np.float32)})
