"""The soak load shape: ramp up, hold, spike, recover; a pure function of time.

Locust drives it through ``tritonize/loadtest/locustfiles/soak_shape.py`` (a ``LoadTestShape`` whose ``tick`` calls
:meth:`SoakPlan.tick`); keeping the plan here, free of locust, lets the runner compute the run's
length and lets tests check the phases without starting Locust. The plan also says where the
soak's resource growth is measured (:meth:`SoakPlan.growth_windows`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonize.errors import TritonizeError


class SoakPlanError(TritonizeError, ValueError):
    """A soak plan with impossible phases (negative lengths, no users)."""


@dataclass(frozen=True, kw_only=True)
class Phase:
    name: str
    start_s: float
    end_s: float
    users: int
    spawn_rate: float


WARMUP_FRACTION = 0.1  # of the hold: first requests load code and fill caches and pools
WINDOW_FRACTION = 0.1  # of the hold: how long each window of the growth comparison is
MIN_WINDOW_SAMPLES = 3  # a median of fewer samples is one transient away from a wrong answer


@dataclass(frozen=True, kw_only=True)
class GrowthWindows:
    """Where a soak's growth is measured, in seconds since the load started.

    *Reference*: right after warm-up (the ramp plus the first 10 % of the hold). *End*: the last
    stretch of the run at the same number of users (the end of the recovery, else of the hold),
    so both windows see the same load (the same client connections, the same batch sizes); what
    the end window holds beyond the reference stayed after warm-up and after the spike.
    """

    reference_start_s: float
    reference_end_s: float
    end_start_s: float
    end_end_s: float


@dataclass(frozen=True, kw_only=True)
class SoakPlan:
    """``users`` reached linearly over ``ramp_s``, held ``hold_s``, raised to ``spike_users`` for
    ``spike_s``, then back to ``users`` for ``recover_s`` (does the server come back?)."""

    users: int
    ramp_s: float = 10.0
    hold_s: float = 60.0
    spike_users: int = 0  # 0: four times users
    spike_s: float = 10.0
    recover_s: float = 10.0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise SoakPlanError(f"soak users must be >= 1, got {self.users}")
        if self.spike_users and self.spike_users < self.users:
            raise SoakPlanError(f"spike users ({self.spike_users}) must be >= users ({self.users})")
        for name in ("ramp_s", "hold_s", "spike_s", "recover_s"):
            if getattr(self, name) < 0:
                raise SoakPlanError(f"soak {name.removesuffix('_s')} must be >= 0 s, got {getattr(self, name)}")
        if self.ramp_s + self.hold_s + self.spike_s + self.recover_s <= 0:
            raise SoakPlanError("a soak needs at least one phase longer than 0 s")

    @property
    def peak_users(self) -> int:
        return self.spike_users or 4 * self.users

    def phases(self) -> list[Phase]:
        """The non-empty phases in order; spawn rates make each phase reach its users promptly."""
        ramp_rate = self.users / self.ramp_s if self.ramp_s > 0 else float(self.users)
        spec = [
            ("ramp", self.ramp_s, self.users, ramp_rate),
            ("hold", self.hold_s, self.users, float(self.users)),
            ("spike", self.spike_s, self.peak_users, float(self.peak_users)),
            ("recover", self.recover_s, self.users, float(self.peak_users)),
        ]
        phases, start = [], 0.0
        for name, length, users, rate in spec:
            if length > 0:
                phases.append(Phase(name=name, start_s=start, end_s=start + length, users=users, spawn_rate=rate))
                start += length
        return phases

    @property
    def total_s(self) -> float:
        return self.ramp_s + self.hold_s + self.spike_s + self.recover_s

    def phase_at(self, elapsed_s: float) -> Phase | None:
        return next((p for p in self.phases() if p.start_s <= elapsed_s < p.end_s), None)

    def tick(self, elapsed_s: float) -> tuple[int, float] | None:
        """Locust ``LoadTestShape.tick``: (users, spawn rate), or ``None`` when the soak is over."""
        phase = self.phase_at(elapsed_s)
        return None if phase is None else (phase.users, phase.spawn_rate)

    def growth_windows(self, interval_s: float) -> GrowthWindows:
        """The reference and end windows (see :class:`GrowthWindows`) for samples every ``interval_s``.

        Each window lasts 10 % of the hold but at least three sampling intervals, cut to the phase
        it lies in (a short recovery: its whole length).
        """
        window = max(WINDOW_FRACTION * self.hold_s, MIN_WINDOW_SAMPLES * interval_s)
        hold_start, hold_end = self.ramp_s, self.ramp_s + self.hold_s
        reference_start = hold_start + WARMUP_FRACTION * self.hold_s
        at_users = [p for p in self.phases() if p.users == self.users and p.name in ("hold", "recover")]
        last = at_users[-1] if at_users else self.phases()[-1]
        return GrowthWindows(
            reference_start_s=reference_start,
            reference_end_s=min(reference_start + window, max(hold_end, reference_start)),
            end_start_s=max(last.end_s - window, last.start_s),
            end_end_s=last.end_s,
        )

    def locust_args(self) -> list[str]:
        """The flags the soak shape (``tritonize/loadtest/locustfiles/soak_shape.py``) reads."""
        return [
            "--soak-users", str(self.users),
            "--soak-ramp", str(self.ramp_s),
            "--soak-hold", str(self.hold_s),
            "--soak-spike-users", str(self.peak_users),
            "--soak-spike", str(self.spike_s),
            "--soak-recover", str(self.recover_s),
        ]  # fmt: skip
