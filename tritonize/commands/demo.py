"""``tritonize demo``: build the demo repository, serve it, answer requests over HTTP and gRPC, stop.

This is README command 1's main job: it proves the whole path on a machine with no GPU and
no hub access.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tritonize.demo import SIZES

SENTENCES = [
    "i am so happy today, everything went right",
    "i feel lonely and sad since you left",
    "this makes me furious, how dare they",
    "i am scared of what tomorrow brings",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="build the demo repository, start the embedded server, send requests, stop")
    p.add_argument("--size", choices=SIZES, default=SIZES[0], help="demo checkpoint size")
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--skip-build", action="store_true", help="reuse an existing repository")
    p.add_argument("--model", action="append", default=None, help="deployments to build (default: all in the spec)")
    p.set_defaults(func=run)


def _free_or_default(default: int) -> int:
    from tritonize.server import free_port, port_is_free

    return default if port_is_free("127.0.0.1", default) else free_port()


def run(args: argparse.Namespace) -> int:
    from tritonize.client import TritonizeClient
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
    with EmbeddedServer(config) as server:
        print(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}", flush=True)
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            with TritonizeClient(url, protocol) as client:
                for model in spec.models:
                    if model.is_generative:
                        result = client.generate(SENTENCES[:2], model=model.name)
                    else:
                        result = client.classify(SENTENCES, model=model.name)
                    print(f"== {protocol.upper()} {model.name}", flush=True)
                    for text, answer in zip(SENTENCES, result):
                        print(f"  {text!r} -> {json.dumps(answer)}", flush=True)
    print("== server stopped", flush=True)
    return 0
