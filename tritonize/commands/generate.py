"""``tritonize generate "text" --model t5_small_emotion``: print generated text as JSON."""

from __future__ import annotations

import argparse
import json

from tritonize.commands._args import positive_float, positive_int
from tritonize.urls import PROTOCOLS, Protocol


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="run a text2text deployment with a running server; prints JSON")
    p.add_argument("texts", nargs="+")
    p.add_argument("--model", default="t5_small_emotion")
    p.add_argument("--protocol", choices=PROTOCOLS, default=Protocol.GRPC.value)
    p.add_argument("--url", default=None)
    p.add_argument(
        "--max-new-tokens", type=positive_int, default=None, help="default: the spec's max_new_tokens; the server caps it"
    )
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.client import generate

    result = generate(
        args.texts, model=args.model, url=args.url, protocol=args.protocol, max_new_tokens=args.max_new_tokens, timeout=args.timeout
    )
    print(json.dumps(result, indent=2))
    return 0
