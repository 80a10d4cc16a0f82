"""argparse value types shared by the subcommands.

A bad value is a user-input mistake: argparse prints a one-line usage error and exits 2
before anything connects to a server, instead of a traceback from deep inside a client.
"""

from __future__ import annotations

import argparse


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (``--top-k``, ``--max-new-tokens``, ``--users``)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (growth limits, where 0 means none at all)."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A number > 0 (timeouts, rates)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def ratio(text: str) -> float:
    """A number in [0, 1] (gates such as ``--max-failure-ratio``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_inference_key_argument(parser: argparse.ArgumentParser) -> None:
    """``--inference-key`` (default ``$TRITONIZE_INFERENCE_KEY``): sent with every inference request.

    One definition for every command that sends inference, so the flag reads the same everywhere.
    A server started with ``tritonize serve`` on a non-loopback host answers inference only with it.
    """
    import os

    from tritonize.server import INFERENCE_HEADER, INFERENCE_KEY_ENV

    parser.add_argument(
        "--inference-key",
        default=os.environ.get(INFERENCE_KEY_ENV) or None,
        help=f"key of a server that puts inference behind the '{INFERENCE_HEADER}' header "
        f"(default: ${INFERENCE_KEY_ENV}; prefer the variable: arguments show in process lists)",
    )
