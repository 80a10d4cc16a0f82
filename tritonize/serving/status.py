"""The watchdog's status file: what ``tritonize serve`` saw, for ``tritonize health`` and people.

Why a file and not another port: a JSON file next to the cache adds no listening socket (and
no new attack surface) and is what a container ``HEALTHCHECK`` or a Kubernetes exec probe
reads through ``tritonize health``. It is replaced atomically after every watchdog round.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def default_status_file(cache_dir: Path, http_port: int) -> Path:
    """``<cache>/serve/status-<http port>.json``: ``serve`` writes it, ``health --url`` finds it by port."""
    return Path(cache_dir) / "serve" / f"status-{http_port}.json"


def write_status(path: Path, status: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status written by ``serve``, or None when there is none (or it is not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
