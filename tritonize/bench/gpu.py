"""GPU utilisation and memory during a row, from the server's own Prometheus metrics.

Triton exports per-GPU gauges (``nv_gpu_utilization`` in 0..1, ``nv_gpu_memory_used_bytes``,
``nv_gpu_memory_total_bytes``, labelled ``gpu_uuid``; refreshed every ``--metrics-interval-ms``,
2 s by default: https://github.com/triton-inference-server/server/blob/main/docs/user_guide/metrics.md).
They are what a dashboard shows, and they cover every process on the GPU, the Python-backend
stubs included, so a sampler thread reads them through the row instead of asking the driver.
A server without a GPU (or without DCGM) exports none: the summary is then empty.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

UTILIZATION = "nv_gpu_utilization"
MEMORY_USED = "nv_gpu_memory_used_bytes"
MEMORY_TOTAL = "nv_gpu_memory_total_bytes"
GAUGES = (UTILIZATION, MEMORY_USED, MEMORY_TOTAL)
MIB = 1 << 20


def read_gpus(metrics_url: str, timeout: float = 2.0) -> dict[str, dict[str, float]]:
    """``{gpu_uuid: {gauge: value}}`` now; ``{}`` when nothing answers or no GPU is reported."""
    from tritonize.loadtest.metrics import prometheus_samples

    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout) as response:  # noqa: S310 - the bench's own server
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return {}
    gpus: dict[str, dict[str, float]] = {}
    for name, labels, value in prometheus_samples(text):
        if name in GAUGES:
            gpus.setdefault(labels.get("gpu_uuid", ""), {})[name] = value
    return gpus


class GpuSampler:
    """``with GpuSampler(url) as gpu: ...`` then ``gpu.summary()``: per GPU, mean and peak
    utilisation (percent) and peak memory used (MiB) over the samples taken every ``interval_s``."""

    def __init__(self, metrics_url: str | None, interval_s: float = 1.0) -> None:
        self.metrics_url = metrics_url
        self.interval_s = interval_s
        self.samples: list[dict[str, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            sample = read_gpus(str(self.metrics_url))
            if sample:
                self.samples.append(sample)

    def __enter__(self) -> GpuSampler:
        if self.metrics_url:
            self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for uuid in sorted({u for sample in self.samples for u in sample}):
            seen = [sample[uuid] for sample in self.samples if uuid in sample]
            utilization = [g[UTILIZATION] * 100 for g in seen if UTILIZATION in g]
            used = [g[MEMORY_USED] / MIB for g in seen if MEMORY_USED in g]
            total = next((g[MEMORY_TOTAL] / MIB for g in seen if MEMORY_TOTAL in g), None)
            out[uuid] = {
                "samples": len(seen),
                "utilization_mean_pct": round(sum(utilization) / len(utilization), 1) if utilization else None,
                "utilization_max_pct": round(max(utilization), 1) if utilization else None,
                "memory_used_max_mib": round(max(used)) if used else None,
                "memory_total_mib": round(total) if total else None,
            }
        return out
