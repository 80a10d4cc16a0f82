"""Pass/fail gates of a load test: what a soak must hold to pass (a non-zero exit otherwise).

Refusals (``OverloadedError``: the server's queue was full) are not failures: they are the
overload protection working. They have their own optional gate.

Resource gates read the growth after warm-up that :func:`tritonize.loadtest.resources.summarize`
measured between the soak's reference and end windows (same users in both): memory (tritonserver
RSS, the stubs' RSS, the server's ``/dev/shm``) may grow by a ratio, descriptors and threads by a
count, and the server must be the same process from start to end (a supervisor's restart hides a
crash and resets every figure).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tritonize.errors import TritonizeError
from tritonize.loadtest.resources import LABELS


class GateError(TritonizeError, ValueError):
    """A gate limit that cannot be met or makes no sense (negative, ratio over 1)."""


# What `tritonize loadtest --shape soak` holds a soak to unless told otherwise.
SOAK_MAX_MEMORY_GROWTH = 0.10
SOAK_MAX_FD_GROWTH = 0
SOAK_MAX_THREAD_GROWTH = 0


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """``measured`` is NaN where there was nothing to measure (that gate then fails)."""

    gate: str
    limit: float
    measured: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["measured"] = None if math.isnan(self.measured) else self.measured  # JSON has no NaN
        return out


@dataclass(frozen=True, kw_only=True)
class Gates:
    """``None`` switches a gate off. The default fails a run with any failure, as before."""

    max_failure_ratio: float | None = 0.0
    max_p99_ms: float | None = None
    max_refusal_ratio: float | None = None
    max_memory_growth: float | None = None  # ratio, e.g. 0.10: the end window's median 10 % above the reference
    max_fd_growth: int | None = None
    max_thread_growth: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_failure_ratio", "max_refusal_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise GateError(f"{name} must be in [0, 1], got {value}")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise GateError(f"max_p99_ms must be > 0, got {self.max_p99_ms}")
        if self.max_memory_growth is not None and self.max_memory_growth < 0:
            raise GateError(f"max_memory_growth must be >= 0, got {self.max_memory_growth}")
        for name in ("max_fd_growth", "max_thread_growth"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise GateError(f"{name} must be >= 0, got {value}")

    @classmethod
    def soak(cls, **overrides: Any) -> Gates:
        """The soak's defaults: no failure, memory within 10 % after warm-up, no descriptor or thread growth."""
        defaults = {
            "max_memory_growth": SOAK_MAX_MEMORY_GROWTH,
            "max_fd_growth": SOAK_MAX_FD_GROWTH,
            "max_thread_growth": SOAK_MAX_THREAD_GROWTH,
        }
        return cls(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def checks_resources(self) -> bool:
        return any(v is not None for v in (self.max_memory_growth, self.max_fd_growth, self.max_thread_growth))

    def evaluate(self, client: Any, resources: dict[str, Any] | None = None) -> list[GateResult]:
        """Check ``client`` (a :class:`~tritonize.loadtest.summary.ClientStats`) and ``resources``
        (:func:`~tritonize.loadtest.resources.summarize` with growth windows); a run with no request
        at all never passes, nor one whose resources a resource gate needed were not sampled."""
        sent = client.requests
        results = [GateResult(gate="requests > 0", limit=1, measured=sent, passed=sent > 0)]
        if self.max_failure_ratio is not None:
            ratio = client.failures / sent if sent else 0.0
            results.append(_at_most("failure ratio", ratio, self.max_failure_ratio))
        if self.max_refusal_ratio is not None:
            ratio = client.refusals / sent if sent else 0.0
            results.append(_at_most("refusal ratio", ratio, self.max_refusal_ratio))
        if self.max_p99_ms is not None:
            results.append(_at_most("p99 ms", client.p99_ms, self.max_p99_ms))
        if self.checks_resources:
            results += self._resource_gates(resources or {})
        return results

    def _resource_gates(self, resources: dict[str, Any]) -> list[GateResult]:
        pids = resources.get("server_pids") or []
        restarts = len(pids) - 1 if pids else math.nan  # no pid at all: the server was never read
        results = [GateResult(gate="server restarts", limit=0, measured=restarts, passed=restarts == 0)]
        limits = {
            **dict.fromkeys(("server_rss", "stubs_rss", "server_shm"), ("growth_ratio", self.max_memory_growth)),
            **dict.fromkeys(("server_fds", "stubs_fds"), ("growth", self.max_fd_growth)),
            **dict.fromkeys(("server_threads", "stubs_threads"), ("growth", self.max_thread_growth)),
        }
        for metric, (key, limit) in limits.items():
            if limit is None:
                continue
            growth = ((resources.get(metric) or {}).get("after_warmup") or {}).get(key)
            unit = " ratio" if key == "growth_ratio" else ""
            results.append(_at_most(f"{LABELS[metric]} growth after warm-up{unit}", math.nan if growth is None else growth, limit))
        return results


def _at_most(gate: str, measured: float, limit: float) -> GateResult:
    return GateResult(gate=gate, limit=limit, measured=round(measured, 6), passed=measured <= limit)
