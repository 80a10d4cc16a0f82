"""What the watchdog does about what it saw: a pure decision, so it is tested without a server.

Observations of one round: is tritonserver running, which stubs died since the last round
(their PIDs turned zombie or vanished), and one probe per deployment. Decision, in order:

* the server process exited -> restart it;
* a stub died, or a probe failed with ``Stub process '<instance>' is not healthy`` -> reload
  the model that owns the stub (Triton 2.51 never restarts a stub; an unload + load does);
* more reloads than ``reloads_before_restart`` since the last start -> restart instead (each
  reload leaves the dead stub's model version and its shm region behind until the server exits);
* probes failing ``failures_before_restart`` rounds in a row with no stub to blame (timeouts,
  errors, connection refused while the process lives) -> restart.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
from dataclasses import asdict, dataclass
from typing import Any

from tritonize.errors import ServerError
from tritonize.serving.probe import ProbeResult
from tritonize.serving.processes import StubProcess

_INSTANCE_SUFFIX = re.compile(r"_\d+_\d+$")  # <model>_<group>_<index>, Triton's default instance names


@dataclass(frozen=True, kw_only=True)
class WatchdogConfig:
    """How often to probe and when to give up on reloading. ``interval_s`` 0 turns the thread off."""

    interval_s: float = 5.0
    probe_timeout_s: float = 10.0
    failures_before_restart: int = 3
    reloads_before_restart: int = 5
    max_restarts: int = 5

    def __post_init__(self) -> None:
        if self.interval_s < 0 or self.probe_timeout_s <= 0:
            raise ServerError("watchdog interval must be >= 0 and the probe timeout > 0 seconds")
        if min(self.failures_before_restart, self.reloads_before_restart, self.max_restarts) < 1:
            raise ServerError("watchdog failure, reload and restart limits must be >= 1")


class EventKind(str, enum.Enum):
    """What the watchdog saw (a fault) or did (a recovery); the status file and logs carry the value."""

    STUB_DIED = "stub_died"
    PROBE_FAILED = "probe_failed"
    RELOADED = "reloaded"
    RELOAD_FAILED = "reload_failed"
    SERVER_EXITED = "server_exited"
    RESTARTED = "restarted"
    RESTART_FAILED = "restart_failed"
    RECOVERED = "recovered"
    GAVE_UP = "gave_up"
    DRAINED = "drained"
    STOPPED = "stopped"

    @property
    def is_fault(self) -> bool:
        """Faults and failed recoveries are logged as warnings; the rest is the watchdog doing its job."""
        return self not in (EventKind.RELOADED, EventKind.RESTARTED, EventKind.RECOVERED, EventKind.DRAINED, EventKind.STOPPED)


class ServerState(str, enum.Enum):
    """The state ``tritonize serve`` reports in its status file."""

    SERVING = "serving"
    RECOVERING = "recovering"  # a deployment failed its probe and has not answered since
    GAVE_UP = "gave_up"  # restarted too often: the supervisor stopped trying
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class Event:
    """One thing the watchdog saw or did; ``duration_s`` for actions and recoveries."""

    kind: EventKind
    model: str = ""
    detail: str = ""
    duration_s: float | None = None
    at: str = ""

    def __post_init__(self) -> None:
        if not self.at:
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
            object.__setattr__(self, "at", now)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        if self.duration_s is not None:
            out["duration_s"] = round(self.duration_s, 3)
        return out


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The recovery of one round: models to reload, or a reason to restart the server."""

    reload: tuple[str, ...] = ()
    restart: str | None = None

    @property
    def empty(self) -> bool:
        return not self.reload and self.restart is None


def model_of_instance(instance: str, known: dict[str, str]) -> str:
    """The model an instance belongs to: from the stubs seen (``instance -> model``), else its name."""
    return known.get(instance) or _INSTANCE_SUFFIX.sub("", instance)


def plan_recovery(
    *,
    server_running: bool,
    dead_stubs: list[StubProcess],
    probes: list[ProbeResult],
    instance_models: dict[str, str],
    failing_rounds: int,
    reloads_since_start: int,
    config: WatchdogConfig,
) -> Plan:
    """Decide one round's recovery (see the module docstring); ``failing_rounds`` includes this round."""
    if not server_running:
        return Plan(restart="tritonserver exited")
    models = {stub.model for stub in dead_stubs}
    models |= {model_of_instance(p.unhealthy_instance, instance_models) for p in probes if p.unhealthy_instance}
    if models:
        if reloads_since_start + len(models) > config.reloads_before_restart:
            return Plan(restart=f"{reloads_since_start} reloads since the last start; restarting frees what they left behind")
        return Plan(reload=tuple(sorted(models)))
    if any(not p.ok for p in probes) and failing_rounds >= config.failures_before_restart:
        failing = ", ".join(f"{p.model}: {p.error}" for p in probes if not p.ok)
        return Plan(restart=f"probes failed {failing_rounds} rounds in a row ({failing})")
    return Plan()
