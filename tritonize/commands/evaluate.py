"""``tritonize evaluate``: accuracy of a served deployment on a labelled file, optionally side by side.

Sends every text of --dataset (text;label or TSV) through the server and writes
evaluation.json, evaluation.md and confusion-matrix PNGs into --out. T5 deployments are
scored on the generated word (exact match) and on label scoring. --compare adds a second
deployment (a model name, HOST:PORT for the same model elsewhere, or MODEL@HOST:PORT).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonize.commands._args import add_command, add_inference_key_argument, add_protocol_argument, dataclass_from_args
from tritonize.urls import default_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "evaluate", run, help="score a served deployment on a labelled file (accuracy, macro F1, confusion matrix, latency)", doc=__doc__
    )
    p.add_argument("--model", required=True, help="deployment to evaluate")
    p.add_argument("--dataset", type=Path, required=True, help="text;label or TSV file")
    add_protocol_argument(p)
    p.add_argument("--url", help=f"host:port (default {default_url('grpc')} gRPC / {default_url('http')} HTTP)")
    p.add_argument("--out", type=Path, default=Path("artifacts/evaluate"), help="output directory")
    p.add_argument("--compare", help="second deployment: MODEL, HOST:PORT or MODEL@HOST:PORT")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    add_inference_key_argument(p)


def run(args: argparse.Namespace) -> int:
    from tritonize.evaluation.run import EvaluateConfig, run_evaluate

    config = dataclass_from_args(EvaluateConfig, args)
    run_evaluate(config)
    print((args.out / "evaluation.md").read_text(encoding="utf-8"))
    return 0
