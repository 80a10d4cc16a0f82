"""``tritonize classify "text" ...``: print pipeline-shaped JSON."""

from __future__ import annotations

import argparse

from tritonize.commands._args import add_texts_command, positive_int, print_answer
from tritonize.urls import default_url


def register(subparsers: argparse._SubParsersAction) -> None:
    add_texts_command(
        subparsers,
        "classify",
        run,
        help="classify texts with a running server; prints JSON",
        model="distilbert_emotion",
        url_help=f"host:port (default {default_url('grpc')} gRPC, {default_url('http')} HTTP)",
        option=("--top-k", {"type": positive_int, "default": 1, "help": "classes per text (>= 1)"}),
        timeout=30.0,
    )


def run(args: argparse.Namespace) -> int:
    from tritonize.client import classify

    return print_answer(classify, args, top_k=args.top_k)
