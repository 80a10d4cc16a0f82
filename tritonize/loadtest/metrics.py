"""Server-side numbers: Triton's statistics extension and its Prometheus metrics, before and after.

The statistics extension (``/v2/models/stats``; gRPC ``ModelStatistics``) gives cumulative
per-model counters: requests, queue and compute nanoseconds, and ``inference_count`` /
``execution_count`` (their ratio is the average batch the dynamic batcher formed). A load test
snapshots them before and after and works on the difference. The Prometheus endpoint
(``:8002/metrics``) carries the same counters as ``nv_inference_*``; it is scraped too because
it is what a dashboard would show, and it needs no client library.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tritonize.urls import http_base

logger = logging.getLogger(__name__)

# The counters a summary reports; all cumulative since server start.
PROMETHEUS_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model (all versions summed), as the statistics extension gives them."""

    name: str
    success_count: int = 0
    fail_count: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success_ns: int = 0
    queue_ns: int = 0
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0

    def __sub__(self, other: ModelStats) -> ModelStats:
        values = {f.name: getattr(self, f.name) - getattr(other, f.name) for f in _COUNTER_FIELDS}
        return ModelStats(name=self.name, **values)

    def __add__(self, other: ModelStats) -> ModelStats:
        values = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in _COUNTER_FIELDS}
        return ModelStats(name=self.name, **values)

    @property
    def avg_batch(self) -> float | None:
        """Average batch per execution: inferences (batch rows) / executions."""
        return self.inference_count / self.execution_count if self.execution_count else None

    def per_request_ms(self, nanoseconds: int) -> float | None:
        return nanoseconds / self.success_count / 1e6 if self.success_count else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["avg_batch"] = self.avg_batch
        out["avg_request_ms"] = self.per_request_ms(self.success_ns)
        out["avg_queue_ms"] = self.per_request_ms(self.queue_ns)
        out["avg_compute_infer_ms"] = self.per_request_ms(self.compute_infer_ns)
        compute = self.compute_input_ns + self.compute_infer_ns + self.compute_output_ns
        out["avg_compute_ms"] = self.per_request_ms(compute)
        return out


_COUNTER_FIELDS = tuple(f for f in dataclasses.fields(ModelStats) if f.name != "name")


def _count_ns(stats: dict[str, Any], key: str) -> tuple[int, int]:
    entry = stats.get(key) or {}
    # gRPC's JSON form spells uint64 as strings; HTTP gives numbers.
    return int(entry.get("count", 0) or 0), int(entry.get("ns", 0) or 0)


def parse_statistics(payload: dict[str, Any]) -> dict[str, ModelStats]:
    """Turn a statistics-extension answer (HTTP JSON or gRPC ``as_json``) into per-model counters."""
    models: dict[str, ModelStats] = {}
    for entry in payload.get("model_stats", []):
        name = entry["name"]
        infer = entry.get("inference_stats", {})
        success_count, success_ns = _count_ns(infer, "success")
        stats = ModelStats(
            name=name,
            success_count=success_count,
            success_ns=success_ns,
            fail_count=_count_ns(infer, "fail")[0],
            inference_count=int(entry.get("inference_count", 0) or 0),
            execution_count=int(entry.get("execution_count", 0) or 0),
            queue_ns=_count_ns(infer, "queue")[1],
            compute_input_ns=_count_ns(infer, "compute_input")[1],
            compute_infer_ns=_count_ns(infer, "compute_infer")[1],
            compute_output_ns=_count_ns(infer, "compute_output")[1],
        )
        models[name] = models[name] + stats if name in models else stats
    return models


def stats_delta(before: dict[str, ModelStats], after: dict[str, ModelStats]) -> dict[str, ModelStats]:
    """Per-model difference ``after - before``; models absent before count from zero."""
    return {name: stats - before.get(name, ModelStats(name=name)) for name, stats in after.items()}


def fetch_statistics(url: str, protocol: str, timeout: float = 10.0, admin_key: str | None = None) -> dict[str, ModelStats]:
    """Read every model's statistics through tritonclient (either protocol).

    ``tritonize serve`` restricts the statistics endpoint to the admin header unless started
    with ``--expose-statistics``; ``admin_key`` sends that header.

    Raises:
        ServerUnavailableError, ClientError: the server did not answer (see ``tritonize.client.wrap_error``).
    """
    from tritonize.client import wrap_error
    from tritonize.server import admin_headers

    headers = admin_headers(protocol, admin_key) if admin_key else None
    try:
        if protocol == "grpc":
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(url)
            try:
                payload = client.get_inference_statistics(headers=headers, as_json=True, client_timeout=timeout)
            finally:
                client.close()
        else:
            import tritonclient.http as httpclient

            client = httpclient.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
            try:
                payload = client.get_inference_statistics(headers=headers)
            finally:
                client.close()
    except Exception as exc:  # noqa: BLE001 - every client failure becomes one typed ClientError
        error = wrap_error(exc, url, "<statistics>")
        if "restricted" in str(exc).lower() or "admin-key" in str(exc).lower():
            hint = "the statistics endpoint is restricted: pass the admin key or start `tritonize serve --expose-statistics`"
            error = type(error)(url, "<statistics>", f"{error.cause}; {hint}")
        raise error from exc
    return parse_statistics(payload)


def parse_prometheus(text: str) -> dict[str, dict[str, float]]:
    """Parse Prometheus text: ``{metric: {model: value}}`` for the ``nv_inference_*`` counters.

    Samples of one model are summed over versions and devices; lines without a ``model`` label
    are kept under ``""``.
    """
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or match["name"] not in PROMETHEUS_COUNTERS:
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        try:
            value = float(match["value"])
        except ValueError:
            continue
        per_model = out.setdefault(match["name"], {})
        model = labels.get("model", "")
        per_model[model] = per_model.get(model, 0.0) + value
    return out


def scrape_metrics(metrics_url: str, timeout: float = 5.0) -> dict[str, dict[str, float]] | None:
    """Scrape ``http://<metrics_url>/metrics``; ``None`` (with a warning) when nothing answers.

    Metrics are an optional extra of a summary, so an unreachable endpoint is not an error.
    """
    url = http_base(metrics_url)
    url = url + ("" if url.endswith("/metrics") else "/metrics")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local server
            return parse_prometheus(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        logger.warning("could not scrape Triton metrics at %s: %s", url, exc)
        return None


def metrics_delta(
    before: dict[str, dict[str, float]] | None, after: dict[str, dict[str, float]] | None
) -> dict[str, dict[str, float]] | None:
    """Per metric and model ``after - before``; ``None`` when either scrape failed."""
    if before is None or after is None:
        return None
    return {
        metric: {model: value - before.get(metric, {}).get(model, 0.0) for model, value in models.items()}
        for metric, models in after.items()
    }
