"""Pass/fail gates of a load test: what a soak must hold to pass (a non-zero exit otherwise).

Refusals (``OverloadedError``: the server's queue was full) are not failures: they are the
overload protection working. They have their own optional gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tritonize.errors import TritonizeError


class GateError(TritonizeError, ValueError):
    """A gate limit that cannot be met or makes no sense (negative, ratio over 1)."""


@dataclass(frozen=True, kw_only=True)
class GateResult:
    gate: str
    limit: float
    measured: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Gates:
    """``None`` switches a gate off. The default fails a run with any failure, as before."""

    max_failure_ratio: float | None = 0.0
    max_p99_ms: float | None = None
    max_refusal_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_failure_ratio", "max_refusal_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise GateError(f"{name} must be in [0, 1], got {value}")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise GateError(f"max_p99_ms must be > 0, got {self.max_p99_ms}")

    def evaluate(self, client: Any) -> list[GateResult]:
        """Check ``client`` (a :class:`~tritonize.loadtest.summary.ClientStats`); a run with no
        request at all never passes."""
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
        return results


def _at_most(gate: str, measured: float, limit: float) -> GateResult:
    return GateResult(gate=gate, limit=limit, measured=round(measured, 6), passed=measured <= limit)
