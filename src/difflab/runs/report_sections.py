"""Sections of report.html that describe the run beyond its metrics: what kind of run it is,
its evaluations (RUN/eval/*.json), its distillation rounds and a Stable Diffusion run's prompts.

Each reads the run folder only (config.yaml as parsed, model.json, distill.yaml, eval/, the
metrics records) and returns escaped HTML; a file that does not parse is left out, never an
error, as the rest of the report.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import yaml

from difflab.config.plugins import network_plugin

DISTILL_FILE = "distill.yaml"  # distillation.config.SETTINGS_FILE (that package imports this one)
EVAL_COLUMNS = ("step", "num_samples", "fid", "kid_mean", "kid_std", "accuracy", "reference")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in path, or {} when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in path, or {} when it is missing or not a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _part(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        config = config.get(key) if isinstance(config, dict) else None
    return config


def run_kind(run_dir: Path, config: dict[str, Any]) -> str:
    """A table: network, conditioning, pixel or latent space, and SD, ControlNet, distilled."""
    info = read_json(run_dir / "model.json")
    network = _part(config, "model", "network")
    rows = [("network", str(network))]
    plugin = _plugin(network)
    if plugin is not None:
        rows += plugin.report_rows(config)
    rows.append(("conditioning", _conditioning(config, info)))
    rows.append(("space", _space(info)))
    base = _part(config, "model", "controlnet", "base_run")
    if base:
        hint = _part(config, "model", "controlnet", "hint")
        rows.append(("ControlNet", f"on base run {base}, hint {hint} (samples/hints.png)"))
    settings = read_yaml_mapping(run_dir / DISTILL_FILE)
    if settings:
        d = settings.get("distill") if isinstance(settings.get("distill"), dict) else {}
        steps = f"{d.get('teacher_steps')} to {d.get('target_steps')} sampling steps"
        rows.append(("distilled", f"from {settings.get('teacher_run')}, {steps}"))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kind">{cells}</table>'


def _conditioning(config: dict[str, Any], info: dict[str, Any]) -> str:
    guidance = _part(config, "sample", "guidance")
    plugin = _plugin(_part(config, "model", "network"))
    if plugin is not None:
        return plugin.conditioning(guidance)
    classes = info.get("num_classes")
    if _part(config, "model", "class_conditional") is False or not classes:
        return "unconditional"
    return f"class labels ({classes} classes), guidance {guidance}"


def _plugin(network: Any):
    """The plug-in module of a network a config.yaml names (config/plugins.py), or None."""
    return network_plugin(network) if isinstance(network, str) else None


def _space(info: dict[str, Any]) -> str:
    shape = "x".join(str(info.get(k)) for k in ("in_channels", "image_size", "image_size"))
    latent = info.get("latent")
    if not isinstance(latent, dict):
        return f"pixels, images {shape}"
    latent_shape = "x".join(map(str, info.get("latent_shape") or []))
    return f"latents {latent_shape} of the VAE {latent.get('vae')}, images {shape}"


def evaluations(run_dir: Path) -> str:
    """A table of RUN/eval/*.json (difflab eval's results), by step then file name."""
    files = sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []
    results = [(path.name, read_json(path)) for path in files]
    results = sorted((r for r in results if r[1]), key=lambda r: (_int(r[1].get("step")), r[0]))
    if not results:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in ("file", *EVAL_COLUMNS, "sampling"))
    head = f"<tr>{head}</tr>"
    rows = "".join(
        f'<tr class="eval"><td>{escape(name)}</td>'
        + "".join(f"<td>{escape(_cell(result.get(c)))}</td>" for c in EVAL_COLUMNS)
        + f"<td>{escape(_sampling(result))}</td></tr>"
        for name, result in results
    )
    return f"<h2>Evaluations</h2><table>{head}{rows}</table>"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _sampling(result: dict[str, Any]) -> str:
    keys = ("sampler", "steps", "guidance", "weights", "seed")
    return ", ".join(f"{k} {result[k]}" for k in keys if k in result)


def distillation_rounds(records: list[dict[str, Any]]) -> str:
    """The rounds of a distilled run: teacher and student steps, the round's mean loss."""
    ended = {r["round"]: r for r in records if "round" in r and "round_loss" in r}
    started: dict[Any, dict[str, Any]] = {}
    for r in records:
        if "round" in r:
            started.setdefault(r["round"], r)
    if not started:
        return ""
    head = "<tr><th>round</th><th>from step</th><th>teacher to student</th><th>loss</th></tr>"
    rows = "".join(
        f'<tr class="round"><td>{escape(str(k))}</td><td>{escape(str(r["step"]))}</td>'
        f"<td>{escape(str(r.get('teacher_steps')))} to {escape(str(r.get('student_steps')))}"
        f"</td><td>{escape(_cell(ended[k]['round_loss']) if k in ended else 'running')}</td></tr>"
        for k, r in sorted(started.items(), key=lambda item: _int(item[0]))
    )
    return f"<h2>Distillation rounds</h2><table>{head}{rows}</table>"


def prompts(config: dict[str, Any]) -> str:
    """A Stable Diffusion run's sample.prompts, one per grid column, numbered left to right."""
    listed = _part(config, "sample", "prompts")
    if not isinstance(listed, list) or not listed:
        return ""
    items = "".join(f'<li class="prompt">{escape(str(p))}</li>' for p in listed)
    return f"<p>Grid columns, left to right:</p><ol>{items}</ol>"
