"""``tritonize generate "text" --model t5_small_emotion``: print generated text as JSON."""

from __future__ import annotations

import argparse

from tritonize.commands._args import add_texts_command, positive_int, print_answer


def register(subparsers: argparse._SubParsersAction) -> None:
    add_texts_command(
        subparsers,
        "generate",
        run,
        help="run a text2text deployment with a running server; prints JSON",
        model="t5_small_emotion",
        url_help=None,
        option=(
            "--max-new-tokens",
            {"type": positive_int, "default": None, "help": "default: the spec's max_new_tokens; the server caps it"},
        ),
        timeout=60.0,
    )


def run(args: argparse.Namespace) -> int:
    from tritonize.client import generate

    return print_answer(generate, args, max_new_tokens=args.max_new_tokens)
