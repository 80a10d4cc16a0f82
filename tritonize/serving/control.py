"""Triton's model-repository API with the admin header: index, load, unload.

Why here: the supervisor reloads a model whose stub died and drains deployments on shutdown
through this API, which ``tritonize serve`` keeps closed to clients without the admin key.
Plain HTTP JSON over ``urllib``; the server runs with ``--model-control-mode=explicit``.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from tritonize.errors import ServerError
from tritonize.server import ADMIN_HEADER
from tritonize.urls import http_base

log = logging.getLogger(__name__)

READY = "READY"
UNLOADING = "UNLOADING"


class RepositoryControl:
    """Load/unload calls to one server. Every method raises ServerError naming the call on failure."""

    def __init__(self, http_url: str, admin_key: str, timeout_s: float = 120.0) -> None:
        self.base = http_base(http_url)
        self.headers = {ADMIN_HEADER: admin_key, "Content-Type": "application/json"}
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, Any] | None = None, timeout_s: float | None = None) -> Any:
        request = urllib.request.Request(self.base + path, data=json.dumps(body or {}).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ServerError(f"POST {path}: HTTP {exc.code} {detail}") from exc
        except OSError as exc:  # URLError, timeouts, resets
            raise ServerError(f"POST {path}: {exc}") from exc
        return json.loads(raw) if raw else None

    def index(self, timeout_s: float = 10.0) -> dict[str, str]:
        """Model name -> state (``READY``, ``UNLOADING``, ``UNAVAILABLE`` ...)."""
        return {entry["name"]: entry.get("state", "") for entry in self._post("/v2/repository/index", timeout_s=timeout_s)}

    def load(self, model: str) -> None:
        """Load ``model`` (returns when it is loaded; its dependents are reloaded by Triton)."""
        self._post(f"/v2/repository/models/{model}/load")

    def unload(self, model: str) -> None:
        """Start unloading ``model``: it refuses new requests; requests in flight finish first."""
        self._post(f"/v2/repository/models/{model}/unload")

    def reload(self, model: str) -> None:
        """Unload then load: the only way Triton 2.51 starts a new stub for a loaded model
        (``load`` of an unchanged, loaded model does nothing)."""
        self.unload(model)
        self.load(model)

    def wait_unloaded(self, models: list[str], deadline: float, poll_s: float = 0.1) -> bool:
        """Poll until none of ``models`` is READY or UNLOADING, or ``deadline`` (monotonic) passes."""
        while True:
            try:
                states = self.index()
            except ServerError as exc:
                log.warning("could not read the model states: %s", exc)
                return False
            if all(states.get(m) not in (READY, UNLOADING) for m in models):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
