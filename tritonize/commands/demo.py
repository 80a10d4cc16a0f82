"""``tritonize demo``: build the demo repository, serve it, answer requests over HTTP and gRPC, stop.

This is README command 1's main job: it proves the whole path on a machine with no GPU and
no hub access.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tritonize.commands._args import add_command
from tritonize.demo import SIZES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "demo", run, help="build the demo repository, start the embedded server, send requests, stop")
    p.add_argument("--size", choices=SIZES, default=SIZES[0], help="demo checkpoint size")
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--skip-build", action="store_true", help="reuse an existing repository")
    p.add_argument("--model", action="append", default=None, help="deployments to build (default: all in the spec)")


def _free_or_default(default: int) -> int:
    from tritonize.server import free_port, port_is_free

    return default if port_is_free("127.0.0.1", default) else free_port()


def run(args: argparse.Namespace) -> int:
    from tritonize.client import TritonizeClient
    from tritonize.demo import demo_labels
    from tritonize.pipeline import BuildOptions, build
    from tritonize.server import EmbeddedServer, ServerConfig
    from tritonize.spec import load_spec
    from tritonize.urls import GRPC_PORT, HTTP_PORT, METRICS_PORT

    spec = load_spec().select(args.model)
    if not args.skip_build:
        print(f"== building the {args.size} demo repository into {args.repository}", flush=True)
        build(BuildOptions(spec=spec, out=args.repository, demo=args.size))
    config = ServerConfig(
        repository=args.repository,
        http_port=_free_or_default(HTTP_PORT),
        grpc_port=_free_or_default(GRPC_PORT),
        metrics_port=_free_or_default(METRICS_PORT),
    )
    print("== starting the embedded Triton server", flush=True)
    right = total = 0
    with EmbeddedServer(config) as server:
        print(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}", flush=True)
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            with TritonizeClient(url, protocol, inference_key=config.client_inference_key) as client:
                for model in spec.models:
                    print(f"== {protocol.upper()} {model.name}", flush=True)
                    for sentence, answer in _ask(client, model):
                        expected = sentence.expected(demo_labels(model))
                        got = answer.get("label", answer.get("generated_text"))
                        judged = expected is not None
                        right, total = right + (judged and got == expected), total + judged
                        note = f"  (expected {expected})" if judged and got != expected else ""
                        print(f"  {sentence.text!r} -> {json.dumps(answer)}{note}", flush=True)
    print("== server stopped", flush=True)
    print(f"== {right} of {total} answers as expected", flush=True)
    if right < total and args.size != SIZES[0]:
        print("   (the full-size demo checkpoints have the seeds' dimensions for speed; they train briefly)", flush=True)
    return 0


def _ask(client: Any, model: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The demo sentences for ``model`` and its answers (HF pipeline output, one dict per sentence)."""
    from tritonize.demo.sentences import SENTENCES

    texts = [s.text for s in SENTENCES]
    if model.is_generative:
        answers = client.generate(texts, model=model.name)
    else:
        answers = client.classify(texts, model=model.name)
    return list(zip(SENTENCES, answers))
