"""A tiny real inference per deployment: the only check that sees a dead Python-backend stub.

Why not ``/v2/health/ready``: in Triton 2.51 a stub that died (or stopped answering) is never
restarted, yet the server stays ready and the model READY; only an inference fails, with
``Stub process '<instance>' is not healthy.`` A probe sends one short text over plain KServe v2
HTTP JSON (no client library, so it also works where tritonclient is absent), asks for the
deployment's first output and names the unhealthy instance when Triton's answer does.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tritonize.errors import ServerError
from tritonize.repository.report import ReportError, read_report
from tritonize.triton_facts import unhealthy_instance
from tritonize.urls import http_base

PROBE_TEXT = "tritonize health probe"


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """How one probe ended. ``unhealthy_instance`` is set when Triton named a stub it found unhealthy."""

    model: str
    ok: bool
    latency_s: float
    error: str = ""
    http_status: int | None = None
    unhealthy_instance: str | None = None
    timed_out: bool = False
    unreachable: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["latency_ms"] = round(out.pop("latency_s") * 1000, 2)
        return out


def repository_deployments(repository: Path) -> list[str]:
    """The deployments (entry models) of a tritonize repository, from its build report.

    Raises:
        ServerError: the repository has no readable ``build_report.json``.
    """
    try:
        return read_report(Path(repository)).deployments()
    except ReportError as exc:
        raise ServerError(f"cannot read the deployments of this repository: {exc}; pass them by name") from exc


class Prober:
    """Sends probes to one server; remembers each deployment's first output name."""

    def __init__(self, http_url: str, timeout_s: float = 10.0, text: str = PROBE_TEXT, inference_key: str | None = None) -> None:
        from tritonize.server import inference_headers

        self.base = http_base(http_url)
        self.timeout_s = timeout_s
        self.text = text
        # A server with inference behind a key answers the probe only with it (metadata stays open).
        self.headers = {"Content-Type": "application/json", **(inference_headers("http", inference_key) or {})}
        self._outputs: dict[str, str] = {}

    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - our own server
            return json.loads(response.read())

    def _output_name(self, model: str) -> str:
        if model not in self._outputs:
            outputs = self._request(f"/v2/models/{model}").get("outputs") or []
            if not outputs:
                raise ValueError(f"model {model!r} declares no outputs")
            self._outputs[model] = outputs[0]["name"]
        return self._outputs[model]

    def probe(self, model: str) -> ProbeResult:
        """One inference of ``model``; never raises (a failure is a result)."""
        start = time.monotonic()

        def failed(error: str, **kw: Any) -> ProbeResult:
            return ProbeResult(model=model, ok=False, latency_s=time.monotonic() - start, error=error, **kw)

        try:
            body = {
                "inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [self.text]}],
                "outputs": [{"name": self._output_name(model)}],
            }
            answer = self._request(f"/v2/models/{model}/infer", body)
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            return failed(message, http_status=exc.code, unhealthy_instance=unhealthy_instance(message))
        except TimeoutError as exc:
            return failed(f"no answer within {self.timeout_s:g} s ({exc})", timed_out=True)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return failed(f"no answer within {self.timeout_s:g} s", timed_out=True)
            return failed(f"server not reachable: {exc.reason}", unreachable=True)
        except (OSError, ValueError, KeyError) as exc:  # reset connection, malformed answer
            return failed(f"{type(exc).__name__}: {exc}", unreachable=isinstance(exc, ConnectionError))
        outputs = answer.get("outputs") or []
        if not outputs or not outputs[0].get("data"):
            return failed(f"answer without output data: {str(answer)[:200]}")
        return ProbeResult(model=model, ok=True, latency_s=time.monotonic() - start)


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        return f"HTTP {exc.code}"
    try:
        return str(json.loads(raw).get("error", raw))
    except ValueError:
        return raw or f"HTTP {exc.code}"
