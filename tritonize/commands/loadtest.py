"""``tritonize loadtest``: a headless Locust run plus Triton's server-side counters, summarised."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="load-test a served model with Locust (headless) and summarise client and server side",
        description=(
            "Runs `locust -f loadtest/locustfile.py --headless` as a subprocess, snapshots Triton's "
            "statistics and metrics before and after, and writes summary.json, summary.md, Locust's "
            "CSV/HTML reports and a throughput/latency plot into --out."
        ),
    )
    parser.add_argument("--model", default="distilbert_emotion", help="deployment (ensemble) name")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--users", type=int, default=8, help="concurrent Locust users (closed loop)")
    parser.add_argument("--spawn-rate", type=float, default=8.0, help="users started per second")
    parser.add_argument("--run-time", default="20s", help="Locust duration, e.g. 20s, 1m30s")
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in one request (batch dimension)")
    parser.add_argument("--corpus", type=Path, help="text;label or TSV file (default: built-in emotion corpus)")
    parser.add_argument("--url", help="host:port of the protocol endpoint (default 127.0.0.1:8001 gRPC / :8000 HTTP)")
    parser.add_argument("--metrics-url", help="Prometheus endpoint host:port (default 127.0.0.1:8002)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument(
        "--admin-key", help="admin key of a `tritonize serve` server (its statistics endpoint is restricted)"
    )
    parser.add_argument("--start-server", action="store_true", help="start an embedded server on free ports")
    parser.add_argument("--repository", type=Path, help="model repository for --start-server")
    parser.add_argument("--locustfile", type=Path, help="default: loadtest/locustfile.py of the source tree")
    parser.add_argument("--out", type=Path, default=Path("loadtest/results"), help="output directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.loadtest.runner import LoadtestConfig, LoadtestError, run_loadtest, run_with_server

    if args.start_server and args.repository is None:
        raise LoadtestError("--start-server needs --repository DIR (build one with `tritonize build --demo tiny`)")
    extra = {"locustfile": args.locustfile} if args.locustfile else {}
    config = LoadtestConfig(
        out=args.out,
        model=args.model,
        protocol=args.protocol,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        texts_per_request=args.texts_per_request,
        corpus=args.corpus,
        url=args.url,
        metrics_url=args.metrics_url,
        request_timeout=args.timeout,
        admin_key=args.admin_key,
        **extra,
    )
    summary = run_with_server(config, args.repository) if args.start_server else run_loadtest(config)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    return 0 if summary.client.failures == 0 and summary.client.requests > 0 else 1
