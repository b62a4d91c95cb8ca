"""`difflab export RUN --format onnx|openvino [--precision fp32|fp16|int8] [--out DIR]`: the
run's denoiser network (and a latent run's VAE decoder) as graphs plus export.json, for
`difflab sample --backend onnxruntime|openvino` and difflab.deploy."""

from __future__ import annotations

import argparse

from difflab.deploy.time_groups import TIME_GROUPS


def add_parser(subparsers) -> argparse.ArgumentParser:
    formats, precisions = ("onnx", "openvino"), ("fp32", "fp16", "int8")
    p = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX or OpenVINO (the export extra)",
        description="Export a run's network as one graph with a dynamic batch, plus "
        "export.json (parameterization, sampling grid, guidance, shapes, classes). Needs the "
        "export extra: pip install 'difflab[export]'.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--format", choices=formats, default="onnx")
    p.add_argument(
        "--precision",
        choices=precisions,
        default="fp32",
        help="fp16 and int8 (NNCF post-training quantization): openvino only",
    )
    p.add_argument("--out", help="output folder (default: RUN/export/FORMAT)")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema")
    p.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch.onnx exporter; dynamo falls back to torchscript where it fails",
    )
    p.add_argument(
        "--int8-keep-ends",
        action="store_true",
        help="int8: keep the first and last weighted layers in floating point",
    )
    p.add_argument(
        "--int8-time-groups",
        type=int,
        default=TIME_GROUPS,
        metavar="G",
        help="int8: one graph per group of the sampling grid's noise levels, each calibrated "
        f"on its own times (default {TIME_GROUPS}; 1: one graph)",
    )
    p.add_argument(
        "--int8-calibration",
        type=int,
        metavar="N",
        help="int8: calibration feeds per graph (default 256)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from difflab.export import export_run
    from difflab.export.calibration import CALIBRATION_SIZE

    size = CALIBRATION_SIZE if args.int8_calibration is None else args.int8_calibration
    out = export_run(
        args.run,
        fmt=args.format,
        precision=args.precision,
        out=args.out,
        weights=args.weights,
        exporter=args.exporter,
        keep_ends=args.int8_keep_ends,
        time_groups=args.int8_time_groups,
        calibration_size=size,
    )
    print(f"wrote {out}")
    return 0
