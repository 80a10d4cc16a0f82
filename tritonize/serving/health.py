"""One health report of a running server: live, ready, a real inference per deployment, the watchdog's view.

Why more than ``/v2/health/ready``: in Triton 2.51 a dead Python-backend stub leaves the server
ready and the model READY while every request to it fails, so only a real inference per
deployment (:mod:`tritonize.serving.probe`) says whether it serves. ``tritonize health`` prints
this report and exits 0 only when ``healthy`` is true (a container ``HEALTHCHECK`` or a
Kubernetes exec probe).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tritonize.repository.report import report_path
from tritonize.serving.probe import Prober, repository_deployments
from tritonize.serving.status import default_status_file, read_status
from tritonize.urls import http_base, port_of, without_scheme

DEFAULT_REPOSITORY = Path("model_repository")  # where `tritonize build` writes by default


def _endpoint_ok(url: str, path: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(http_base(url) + path, timeout=timeout_s) as response:  # noqa: S310 - user's server
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def deployments_to_probe(
    models: Sequence[str] | None, repository: Path | None, status: dict[str, Any] | None
) -> list[str]:
    """Named deployments, else the repository's, else those the watchdog watches, else ./model_repository's."""
    if models:
        return list(models)
    if repository is not None:
        return repository_deployments(repository)
    if status and status.get("deployments"):
        return sorted(status["deployments"])
    return repository_deployments(DEFAULT_REPOSITORY) if report_path(DEFAULT_REPOSITORY).is_file() else []


def health_report(
    url: str,
    *,
    cache_dir: Path,
    models: Sequence[str] | None = None,
    repository: Path | None = None,
    status_file: Path | None = None,
    timeout_s: float = 10.0,
    inference_key: str | None = None,
) -> dict[str, Any]:
    """The report ``tritonize health`` prints; ``healthy`` is True only when every probe answered.

    ``inference_key`` goes with each probe, for a server that puts inference behind a key."""
    url = without_scheme(url)
    status_file = status_file or default_status_file(cache_dir, port_of(url))
    status = read_status(status_file)
    live = _endpoint_ok(url, "/v2/health/live", timeout_s)
    ready = live and _endpoint_ok(url, "/v2/health/ready", timeout_s)
    prober = Prober(url, timeout_s=timeout_s, inference_key=inference_key)
    probes = {name: prober.probe(name).to_dict() for name in deployments_to_probe(models, repository, status)} if live else {}
    return {
        "url": url,
        "healthy": live and ready and all(p["ok"] for p in probes.values()),
        "live": live,
        "ready": ready,
        "deployments": probes,
        "status_file": str(status_file),
        "watchdog": status,
    }
