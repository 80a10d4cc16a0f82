"""``tritonize classify "text" ...``: print pipeline-shaped JSON."""

from __future__ import annotations

import argparse
import json

from tritonize.commands._args import positive_float, positive_int
from tritonize.urls import PROTOCOLS, Protocol, default_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("classify", help="classify texts with a running server; prints JSON")
    p.add_argument("texts", nargs="+")
    p.add_argument("--model", default="distilbert_emotion")
    p.add_argument("--protocol", choices=PROTOCOLS, default=Protocol.GRPC.value)
    p.add_argument("--url", default=None, help=f"host:port (default {default_url('grpc')} gRPC, {default_url('http')} HTTP)")
    p.add_argument("--top-k", type=positive_int, default=1, help="classes per text (>= 1)")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.client import classify

    result = classify(args.texts, model=args.model, url=args.url, protocol=args.protocol, top_k=args.top_k, timeout=args.timeout)
    print(json.dumps(result, indent=2))
    return 0
