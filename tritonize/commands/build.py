"""``tritonize build``: write a Triton model repository from the spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tritonize.spec import Target, load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help="build a Triton model repository from the model spec")
    p.add_argument("--spec", type=Path, default=None, help="spec TOML (default: the one shipped, tritonize/models.toml)")
    p.add_argument("--demo", choices=["tiny", "full"], default=None, help="build local demo checkpoints instead of the hub ones")
    p.add_argument("--target", choices=["embedded", "cpu"], default="embedded", help="where the model step runs")
    p.add_argument("--out", type=Path, default=Path("model_repository"), help="repository directory")
    p.add_argument("--model", action="append", default=None, help="build only this deployment (repeatable)")
    p.add_argument("--no-dynamic-batching", action="store_true", help="turn the dynamic batcher off (for benchmarks)")
    p.add_argument(
        "--train-data", type=Path, help="with --demo: fine-tune the demo checkpoints on this text;label or TSV file"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.builder import BuildOptions, build

    spec = load_spec(args.spec).select(args.model)
    options = BuildOptions(
        spec=spec,
        out=args.out,
        target=Target(args.target),
        demo=args.demo,
        dynamic_batching=not args.no_dynamic_batching,
        train_data=args.train_data,
    )
    report = build(options)
    summary = {name: entry.get("validation", {}) for name, entry in report["models"].items()}
    print(f"repository written to {args.out} (report: {args.out / 'build_report.json'})")
    print(json.dumps(summary, indent=2))
    return 0
