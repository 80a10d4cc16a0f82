"""``tritonize health``: is the server answering, per deployment, and what did the watchdog see.

Prints the report of :func:`tritonize.serving.health.health_report` as one JSON object; exit 0
when the server is live and ready and every probed deployment answered a real inference, else 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tritonize.commands._args import add_command, add_inference_key_argument
from tritonize.urls import default_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "health", run, help="probe each deployment with a real inference; show the watchdog's status")
    p.add_argument("--url", default=default_url("http"), help="HTTP host:port of the server")
    p.add_argument("--model", action="append", default=None, help="deployment to probe (default: all the server watches)")
    p.add_argument("--repository", type=Path, help="take the deployments from this repository's build report")
    p.add_argument("--status-file", type=Path, help="status written by `tritonize serve` (default: by the URL's port)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one probe may take")
    add_inference_key_argument(p)


def run(args: argparse.Namespace) -> int:
    from tritonize.cache import default_cache_dir
    from tritonize.serving.health import health_report

    report = health_report(
        args.url,
        cache_dir=default_cache_dir(),
        models=args.model,
        repository=args.repository,
        status_file=args.status_file,
        timeout_s=args.timeout,
        inference_key=args.inference_key,
    )
    print(json.dumps(report, indent=2))
    return 0 if report["healthy"] else 1
