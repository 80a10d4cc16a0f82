"""``tritonize evaluate``: accuracy of a served deployment on a labelled file, optionally side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonize.urls import PROTOCOLS, Protocol, default_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a served deployment on a labelled file (accuracy, macro F1, confusion matrix, latency)",
        description=(
            "Sends every text of --dataset (text;label or TSV) through the server and writes "
            "evaluation.json, evaluation.md and confusion-matrix PNGs into --out. T5 deployments are "
            "scored on the generated word (exact match) and on label scoring. --compare adds a second "
            "deployment (a model name, HOST:PORT for the same model elsewhere, or MODEL@HOST:PORT)."
        ),
    )
    p.add_argument("--model", required=True, help="deployment to evaluate")
    p.add_argument("--dataset", type=Path, required=True, help="text;label or TSV file")
    p.add_argument("--protocol", choices=PROTOCOLS, default=Protocol.GRPC.value)
    p.add_argument("--url", help=f"host:port (default {default_url('grpc')} gRPC / {default_url('http')} HTTP)")
    p.add_argument("--out", type=Path, default=Path("artifacts/evaluate"), help="output directory")
    p.add_argument("--compare", help="second deployment: MODEL, HOST:PORT or MODEL@HOST:PORT")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.evaluation.run import EvaluateConfig, run_evaluate

    config = EvaluateConfig(
        model=args.model,
        dataset=args.dataset,
        protocol=args.protocol,
        url=args.url,
        out=args.out,
        compare=args.compare,
        limit=args.limit,
    )
    run_evaluate(config)
    print((args.out / "evaluation.md").read_text(encoding="utf-8"))
    return 0
