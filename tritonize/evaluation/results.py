"""What an evaluation measured: the deployment it asked (:class:`Target`) and its scores and latencies.

A module of its own because both the run (which fills these) and the report (which writes them)
need them, and the report must not import the run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tritonize.evaluation.metrics import Metrics
from tritonize.percentiles import percentile


@dataclass(frozen=True, kw_only=True)
class Target:
    """One deployment on one server."""

    model: str
    url: str
    protocol: str = "grpc"

    @property
    def name(self) -> str:
        return f"{self.model}@{self.url}"



@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One deployment's scores on the file, per head, and its request latencies."""

    target: Target
    heads: dict[str, Metrics]
    latencies_s: list[float] = field(repr=False)
    texts_per_request: int
    seconds: float

    def latency(self) -> dict[str, float]:
        ms = [x * 1000 for x in self.latencies_s]
        return {
            "requests": len(ms),
            "texts_per_request": self.texts_per_request,
            "mean_ms": statistics.fmean(ms),
            "p50_ms": statistics.median(ms),
            "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99),
            "texts_per_s": self.total / self.seconds if self.seconds else 0.0,
        }

    @property
    def total(self) -> int:
        return next(iter(self.heads.values())).total

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.target.model,
            "url": self.target.url,
            "protocol": self.target.protocol,
            "heads": {name: m.to_dict() for name, m in self.heads.items()},
            "latency": self.latency(),
        }
