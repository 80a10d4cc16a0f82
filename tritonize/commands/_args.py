"""argparse value types and argument groups shared by the subcommands.

A bad value is a user-input mistake: argparse prints a one-line usage error and exits 2
before anything connects to a server, instead of a traceback from deep inside a client.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from tritonize.urls import PROTOCOLS, Protocol


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


def add_command(
    subparsers: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int], *, doc: str | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``, which runs ``run`` (``args.func``); ``kwargs`` go to ``add_parser``.

    ``doc``: the command module's docstring, whose body (after the summary line) becomes the
    ``--help`` description, so the module's docstring and its help say one thing.
    """
    if doc is not None:
        kwargs["description"] = " ".join(doc.split("\n", 1)[1].split())
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(func=run)
    return parser


def add_protocol_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--protocol`` (grpc or http; default grpc)."""
    parser.add_argument("--protocol", choices=PROTOCOLS, default=Protocol.GRPC.value)


def add_texts_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    model: str,
    url_help: str | None,
    option: tuple[str, dict[str, Any]],
    timeout: float,
) -> None:
    """A command that sends texts to a running server and prints its answer (classify, generate).

    ``option``: the command's own flag and its ``add_argument`` keywords, listed after ``--url``.
    """
    p = add_command(subparsers, name, run, help=help)
    p.add_argument("texts", nargs="+")
    p.add_argument("--model", default=model)
    add_protocol_argument(p)
    p.add_argument("--url", default=None, help=url_help)
    flag, keywords = option
    p.add_argument(flag, **keywords)
    p.add_argument("--timeout", type=positive_float, default=timeout, help="seconds per request")
    add_inference_key_argument(p)


def print_answer(call: Callable[..., Any], args: argparse.Namespace, **options: Any) -> int:
    """Send the texts of an :func:`add_texts_command` command with ``call`` (``tritonize.client.classify``
    or ``generate``, plus its own ``options``) and print the answer as JSON."""
    result = call(
        args.texts,
        model=args.model,
        url=args.url,
        protocol=args.protocol,
        timeout=args.timeout,
        inference_key=args.inference_key,
        **options,
    )
    print(json.dumps(result, indent=2))
    return 0


def dataclass_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """A ``cls`` (a dataclass) whose fields take the same-named options, then ``values``.

    An option left unset (None, or an empty string) leaves its field at the dataclass default; a
    field without an option of its name keeps its default unless ``values`` gives it.
    """
    given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) not in (None, "")}
    return cls(**{**given, **values})
