"""``tritonize health``: is the server answering, per deployment, and what did the watchdog see.

Exit 0 when the server is live and ready and every probed deployment answered a real inference,
else 1: usable as a container ``HEALTHCHECK`` or a Kubernetes exec probe. Why more than
``/v2/health/ready``: in Triton 2.51 a dead Python-backend stub leaves the server ready and the
model READY while every request to it fails. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tritonize.commands._args import add_inference_key_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("health", help="probe each deployment with a real inference; show the watchdog's status")
    p.add_argument("--url", default="127.0.0.1:8000", help="HTTP host:port of the server")
    p.add_argument("--model", action="append", default=None, help="deployment to probe (default: all the server watches)")
    p.add_argument("--repository", type=Path, help="take the deployments from this repository's build report")
    p.add_argument("--status-file", type=Path, help="status written by `tritonize serve` (default: by the URL's port)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one probe may take")
    add_inference_key_argument(p)
    p.set_defaults(func=run)


def _endpoint_ok(url: str, path: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}{path}", timeout=timeout) as response:  # noqa: S310 - user's server
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _deployments(args: argparse.Namespace, status: dict[str, Any] | None) -> list[str]:
    from tritonize.serving.probe import repository_deployments

    if args.model:
        return list(args.model)
    if args.repository is not None:
        return repository_deployments(args.repository)
    if status and status.get("deployments"):
        return sorted(status["deployments"])
    default = Path("model_repository")
    return repository_deployments(default) if (default / "build_report.json").is_file() else []


def check(args: argparse.Namespace) -> dict[str, Any]:
    """The health report printed by the command (also used by tests)."""
    from tritonize.cache import default_cache_dir
    from tritonize.serving.probe import Prober
    from tritonize.serving.status import default_status_file, read_status

    url = args.url.split("://", 1)[-1].rstrip("/")
    port = int(url.rsplit(":", 1)[1]) if ":" in url else 80
    status_file = args.status_file or default_status_file(default_cache_dir(), port)
    status = read_status(status_file)
    live = _endpoint_ok(url, "/v2/health/live", args.timeout)
    ready = live and _endpoint_ok(url, "/v2/health/ready", args.timeout)
    prober = Prober(url, timeout_s=args.timeout, inference_key=args.inference_key)
    probes = {name: prober.probe(name).to_dict() for name in _deployments(args, status)} if live else {}
    return {
        "url": url,
        "healthy": live and ready and all(p["ok"] for p in probes.values()),
        "live": live,
        "ready": ready,
        "deployments": probes,
        "status_file": str(status_file),
        "watchdog": status,
    }


def run(args: argparse.Namespace) -> int:
    report = check(args)
    print(json.dumps(report, indent=2))
    return 0 if report["healthy"] else 1
