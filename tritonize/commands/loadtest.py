"""``tritonize loadtest``: a headless Locust run plus Triton's server-side counters, summarised.

Runs Locust headless on tritonize's locustfile as a subprocess, snapshots Triton's
statistics and metrics before and after, and writes summary.json, summary.md, Locust's
CSV/HTML reports and a throughput/latency plot into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tritonize.commands._args import (
    add_command,
    add_inference_key_argument,
    add_protocol_argument,
    dataclass_from_args,
    non_negative_int,
    positive_float,
    positive_int,
    ratio,
)
from tritonize.urls import default_url


def duration(text: str) -> float:
    """Seconds of ``10``, ``10s``, ``1m30s`` (Locust's ``--run-time`` syntax)."""
    from tritonize.loadtest.runner import LoadtestError, parse_run_time

    try:
        return parse_run_time(text)
    except LoadtestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "loadtest", run, help="load-test a served model with Locust (headless) and summarise client and server side", doc=__doc__
    )
    parser.add_argument("--model", default="distilbert_emotion", help="deployment (ensemble) name")
    add_protocol_argument(parser)
    parser.add_argument("--users", type=positive_int, default=8, help="concurrent Locust users (closed loop)")
    parser.add_argument("--spawn-rate", type=positive_float, default=8.0, help="users started per second")
    parser.add_argument("--run-time", default="20s", help="Locust duration, e.g. 20s, 1m30s")
    parser.add_argument("--texts-per-request", type=positive_int, default=1, help="texts in one request (batch dimension)")
    parser.add_argument("--corpus", type=Path, help="text;label or TSV file (default: built-in emotion corpus)")
    parser.add_argument("--url", help=f"host:port of the protocol endpoint (default {default_url('grpc')} gRPC / {default_url('http')} HTTP)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run Locust distributed: a headless master and this many worker processes on this machine "
        "(loopback); the summary is the master's merged statistics (default 0: one Locust process)",
    )
    parser.add_argument("--metrics-url", help=f"Prometheus endpoint host:port (default {default_url('metrics')})")
    parser.add_argument("--timeout", type=positive_float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument(
        "--admin-key", help="admin key of a `tritonize serve` server (its statistics endpoint is restricted)"
    )
    add_inference_key_argument(parser)
    parser.add_argument("--start-server", action="store_true", help="start an embedded server on free ports")
    parser.add_argument("--repository", type=Path, help="model repository for --start-server")
    parser.add_argument("--locustfile", type=Path, help="default: the locustfile shipped in tritonize.loadtest.locustfiles")
    parser.add_argument("--out", type=Path, default=Path("loadtest/results"), help="output directory")
    soak = parser.add_argument_group(
        "soak", "--shape soak: ramp to --users, hold, spike to --spike-users, recover; memory sampled throughout"
    )
    soak.add_argument("--shape", choices=("steady", "soak"), default="steady", help="steady: --users for --run-time")
    soak.add_argument("--ramp", type=duration, default=10.0, help="soak: time to reach --users (default 10s)")
    soak.add_argument("--hold", type=duration, default=60.0, help="soak: time at --users (default 60s)")
    soak.add_argument("--spike", type=duration, default=10.0, help="soak: time at --spike-users (default 10s)")
    soak.add_argument("--spike-users", type=positive_int, help="soak: users during the spike (default 4x --users)")
    soak.add_argument("--recover", type=duration, default=10.0, help="soak: time back at --users (default 10s)")
    gates = parser.add_argument_group("gates", "pass/fail limits; the command exits 1 when one fails")
    gates.add_argument("--max-failure-ratio", type=ratio, default=0.0, help="failed / sent, refusals excluded (default 0)")
    gates.add_argument("--max-p99-ms", type=positive_float, help="p99 latency of requests not refused")
    gates.add_argument("--max-refusal-ratio", type=ratio, help="refused as overloaded / sent (default: no limit)")
    gates.add_argument(
        "--max-memory-growth",
        type=ratio,
        help="soak: tritonserver RSS, stubs RSS and server /dev/shm may each grow by this ratio from after warm-up "
        "to the end of the run (default 0.1 with --shape soak, off otherwise)",
    )
    gates.add_argument(
        "--max-fd-growth", type=non_negative_int, help="soak: open descriptors (default 0 with --shape soak, off otherwise)"
    )
    gates.add_argument(
        "--max-thread-growth", type=non_negative_int, help="soak: threads (default 0 with --shape soak, off otherwise)"
    )
    parser.add_argument("--sample-interval", type=positive_float, default=1.0, help="memory sampling period, s")


def run(args: argparse.Namespace) -> int:
    from tritonize.loadtest.runner import LoadtestConfig, LoadtestError, run_loadtest, run_with_server

    if args.start_server and args.repository is None:
        raise LoadtestError("--start-server needs --repository DIR (build one with `tritonize build --demo tiny`)")
    if args.url and "," in args.url:  # the summary reads one server's statistics
        raise LoadtestError(
            "--url takes one server; to load several, run `locust -f loadtest/locustfile.py "
            "--triton-urls H1:P,H2:P` (see README, Scale out)"
        )
    config = dataclass_from_args(
        LoadtestConfig,
        args,
        request_timeout=args.timeout,
        soak=_plan(args),
        gates=_gates(args),
        sample_interval_s=args.sample_interval,
    )
    summary = run_with_server(config, args.repository) if args.start_server else run_loadtest(config)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    for gate in summary.gates:
        if not gate.passed:
            print(f"tritonize: gate failed: {gate.gate} = {gate.measured:g}, limit {gate.limit:g}", file=sys.stderr)
    return 0 if summary.passed else 1


def _gates(args: argparse.Namespace):  # -> Gates
    """A soak gets the resource gates by default; a steady run only those asked for."""
    from tritonize.loadtest.gates import Gates

    growth = {
        "max_memory_growth": args.max_memory_growth,
        "max_fd_growth": args.max_fd_growth,
        "max_thread_growth": args.max_thread_growth,
    }
    common = {"max_failure_ratio": args.max_failure_ratio, "max_p99_ms": args.max_p99_ms, "max_refusal_ratio": args.max_refusal_ratio}
    if args.shape == "soak":
        return Gates.soak(**common, **growth)
    return Gates(**common, **growth)


def _plan(args: argparse.Namespace):  # -> SoakPlan | None (imported lazily, like every load-test module)
    if args.shape != "soak":
        return None
    from tritonize.loadtest.soak import SoakPlan

    return SoakPlan(
        users=args.users,
        ramp_s=args.ramp,
        hold_s=args.hold,
        spike_users=args.spike_users or 0,
        spike_s=args.spike,
        recover_s=args.recover,
    )
