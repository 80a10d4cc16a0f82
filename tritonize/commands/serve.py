"""``tritonize serve``: run the embedded Triton server under a watchdog until SIGINT/SIGTERM.

The server runs in explicit model-control mode under :class:`tritonize.serving.supervisor.Supervisor`:
a dead Python-backend stub gets its model reloaded, a dead server is restarted, and SIGTERM
drains the deployments before tritonserver stops (see that module for why each is needed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from tritonize.commands._args import add_command, dataclass_from_args
from tritonize.server import (
    ADMIN_HEADER,
    DEFAULT_EXIT_TIMEOUT_S,
    GRPC_ADMIN_HEADER,
    GRPC_INFERENCE_HEADER,
    INFERENCE_HEADER,
    INFERENCE_KEY_ENV,
    RESTRICTED_APIS,
    GrpcTls,
    ServerConfig,
    exposure_warning,
)
from tritonize.urls import GRPC_PORT, HTTP_PORT, LOOPBACK, METRICS_PORT


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--host", default=LOOPBACK, help="bind address (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--http-port", type=int, default=HTTP_PORT)
    p.add_argument("--grpc-port", type=int, default=GRPC_PORT)
    p.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    p.add_argument("--admin-key", default=None, help="secret for the restricted endpoints (default: random)")
    p.add_argument(
        "--open-admin-apis",
        action="store_true",
        help=f"do not restrict {', '.join(RESTRICTED_APIS)} (trusted networks only)",
    )
    p.add_argument(
        "--expose-statistics",
        action="store_true",
        help="let clients without the admin key read the statistics extension (/v2/models/stats), e.g. for load tests",
    )
    p.add_argument(
        "--inference-key",
        default=os.environ.get(INFERENCE_KEY_ENV) or None,
        help=f"put inference behind this key (header '{INFERENCE_HEADER}'; default ${INFERENCE_KEY_ENV}); without "
        "one, a random key when --host is not loopback and open inference on loopback",
    )
    p.add_argument(
        "--open-inference",
        action="store_true",
        help="serve inference without a key even on a non-loopback --host (trusted networks only: one malformed "
        "request can stop the bundled tritonserver 2.51)",
    )
    p.add_argument(
        "--exit-timeout-secs",
        type=int,
        default=DEFAULT_EXIT_TIMEOUT_S,
        help="on SIGTERM, time for in-flight requests (Triton's flag)",
    )
    tls = p.add_argument_group("gRPC TLS (Triton's --grpc-use-ssl flags; HTTP stays plain: bind it to loopback)")
    tls.add_argument("--grpc-server-cert", type=Path, help="PEM server certificate; with --grpc-server-key turns TLS on")
    tls.add_argument("--grpc-server-key", type=Path, help="PEM server private key")
    tls.add_argument("--grpc-root-cert", type=Path, help="PEM CA that signs client certificates (mutual TLS)")
    tls.add_argument("--grpc-use-ssl-mutual", action="store_true", help="require client certificates signed by --grpc-root-cert")


def _tls_from_args(args: argparse.Namespace) -> GrpcTls | None:
    from tritonize.errors import ServerError

    cert, key = args.grpc_server_cert, args.grpc_server_key
    if cert is None and key is None:
        if args.grpc_root_cert or args.grpc_use_ssl_mutual:
            raise ServerError("--grpc-root-cert / --grpc-use-ssl-mutual need --grpc-server-cert and --grpc-server-key")
        return None
    if cert is None or key is None:
        raise ServerError("gRPC TLS needs both --grpc-server-cert and --grpc-server-key")
    return GrpcTls(cert=cert, key=key, root_cert=args.grpc_root_cert, mutual=args.grpc_use_ssl_mutual)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The server the options describe (admin and inference keys: random unless given).

    Raises ServerError when --open-inference and --inference-key are both given.
    """
    from tritonize.errors import ServerError

    if args.open_inference and args.inference_key:
        raise ServerError("--open-inference and --inference-key contradict each other: give one")
    # a key restricts inference; --open-inference opens it on any host; neither: ServerConfig decides by host
    restrict_inference = True if args.inference_key else False if args.open_inference else None
    return dataclass_from_args(
        ServerConfig,
        args,
        restrict_admin_apis=not args.open_admin_apis,
        restrict_inference=restrict_inference,
        grpc_tls=_tls_from_args(args),
        exit_timeout_s=args.exit_timeout_secs,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "serve", run, help="run the embedded Triton server (pytriton's tritonserver) under a watchdog")
    add_server_arguments(p)
    w = p.add_argument_group("watchdog")
    w.add_argument("--watchdog-interval", type=float, default=5.0, help="seconds between probe rounds; 0 turns it off")
    w.add_argument("--probe-timeout", type=float, default=10.0, help="seconds one probe inference may take")
    w.add_argument("--status-file", type=Path, help="JSON status for `tritonize health` (default: in the cache, by HTTP port)")


def _deployments(repository: Path) -> list[str]:
    from tritonize.errors import ServerError
    from tritonize.serving.probe import repository_deployments

    try:
        return repository_deployments(repository)
    except ServerError as exc:
        print(f"watchdog probes and drain off: {exc}", file=sys.stderr, flush=True)
        return []


def _print_ready(supervisor, config: ServerConfig, status_file: Path) -> None:
    server = supervisor.server
    tls = " (TLS)" if config.grpc_tls else ""
    print(f"Triton ready: HTTP {server.http_url}  gRPC {server.grpc_url}{tls}  metrics {server.metrics_url}", flush=True)
    if config.restricted_apis:
        print(
            f"{', '.join(config.restricted_apis)} endpoints need the HTTP header '{ADMIN_HEADER}: {config.admin_key}' "
            f"(gRPC metadata '{GRPC_ADMIN_HEADER}'), or start with --open-admin-apis",
            flush=True,
        )
    if config.inference_restricted:
        print(
            f"inference needs the HTTP header '{INFERENCE_HEADER}: {config.inference_key}' (gRPC metadata "
            f"'{GRPC_INFERENCE_HEADER}'); clients take --inference-key or ${INFERENCE_KEY_ENV}",
            flush=True,
        )
    print(f"watchdog: {len(supervisor.deployments)} deployments, status {status_file}", flush=True)
    print(f"log: {server.log_path}; Ctrl-C or SIGTERM drains and stops", flush=True)


def run(args: argparse.Namespace) -> int:
    from tritonize.cache import default_cache_dir
    from tritonize.serving.status import default_status_file
    from tritonize.serving.supervisor import Supervisor
    from tritonize.serving.watchdog import WatchdogConfig

    config = config_from_args(args)
    warning = exposure_warning(config.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    status_file = args.status_file or default_status_file(default_cache_dir(), config.http_port)
    watchdog = WatchdogConfig(interval_s=args.watchdog_interval, probe_timeout_s=args.probe_timeout)
    supervisor = Supervisor(config, watchdog, deployments=_deployments(config.repository), status_file=status_file)
    supervisor.start()
    try:
        _print_ready(supervisor, config, status_file)
        while not stop.wait(0.5):
            if supervisor.gave_up:
                print("tritonize serve: the watchdog gave up restarting tritonserver:\n" + supervisor.server.log_tail(), flush=True)
                break
    finally:
        print(f"stopping: draining deployments (exit timeout {config.exit_timeout_s} s)", flush=True)
        code = supervisor.shutdown()
    print(f"Triton stopped (tritonserver exit code {code})", flush=True)
    return 1 if supervisor.gave_up else code
