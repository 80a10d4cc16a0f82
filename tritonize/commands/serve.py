"""``tritonize serve``: run the embedded Triton server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from tritonize.server import EmbeddedServer, ServerConfig


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--admin-key", default=None, help="secret for the restricted endpoints (default: random)")
    p.add_argument(
        "--open-admin-apis",
        action="store_true",
        help="do not restrict the model-repository and shared-memory endpoints (trusted networks only)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    extra = {"admin_key": args.admin_key} if args.admin_key else {}
    return ServerConfig(
        repository=args.repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        restrict_admin_apis=not args.open_admin_apis,
        **extra,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the embedded Triton server (pytriton's tritonserver)")
    add_server_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    config = config_from_args(args)
    with EmbeddedServer(config) as server:
        print(f"Triton ready: HTTP {server.http_url}  gRPC {server.grpc_url}  metrics {server.metrics_url}", flush=True)
        if config.restrict_admin_apis:
            print(
                "model-repository and shared-memory endpoints need the header "
                f"'admin-key: {config.admin_key}' (or start with --open-admin-apis)",
                flush=True,
            )
        print(f"log: {server.log_path}; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            if not server.is_running():
                print("tritonserver exited unexpectedly:\n" + server.log_tail(), flush=True)
                return 1
    print("Triton stopped", flush=True)
    return 0
