"""Run tritonserver, keep it answering, and stop it without dropping accepted requests.

What Triton 2.51 does not do and this adds (each measured on the embedded server):

* **A dead stub is never restarted.** The watchdog probes every deployment with a real
  inference each ``interval_s`` and scans the server's stubs; a stub that died or that Triton
  calls unhealthy gets its model reloaded (unload + load through the repository API, which
  needs ``--model-control-mode=explicit`` and the admin key). A stopped (SIGSTOP) stub is
  declared unhealthy by Triton after about 1 s and replaced the same way, but killed first:
  resuming it (SIGCONT) under load aborted the server in 5 of 6 trials
  (``boost::interprocess::lock_exception``, SIGABRT) even after the reload had succeeded.
* **A killed server leaves debris.** Its stubs live on for a while and its ``/dev/shm``
  regions are never unlinked; the supervisor kills the one and removes the other (both
  identified by the stub command lines that name the server's PID) and starts a new server
  on the same ports with the same admin key.
* **SIGTERM fails in-flight ensemble requests.** On SIGTERM Triton's composing models stop
  accepting work, so an ensemble request between two steps ends with ``Server is stopping``.
  :meth:`Supervisor.shutdown` therefore first unloads the deployments (entry models): new
  requests are refused (``has no available versions``), the ones in flight finish on the
  still-loaded steps; then tritonserver gets SIGINT. Everything is bounded by the exit timeout
  plus a 5 s grace, after which the server is killed (and its debris removed).
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tritonize.errors import ServerError, TritonizeError
from tritonize.server import EmbeddedServer, ServerConfig
from tritonize.serving import processes
from tritonize.serving.control import RepositoryControl
from tritonize.serving.probe import Prober, ProbeResult, repository_deployments
from tritonize.serving.status import write_status
from tritonize.serving.watchdog import Event, EventKind, Plan, ServerState, WatchdogConfig, plan_recovery

log = logging.getLogger(__name__)

EXIT_GRACE_S = 5.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Supervisor:
    """An :class:`EmbeddedServer` in explicit model-control mode, a watchdog thread and a drain.

    ``deployments`` default to the repository's build report; an empty list turns probes and
    the drain off (the process is still restarted when it exits). Use as a context manager or
    call :meth:`start` and :meth:`shutdown`. :meth:`check_now` runs one watchdog round.
    """

    def __init__(
        self,
        config: ServerConfig,
        watchdog: WatchdogConfig | None = None,
        deployments: list[str] | None = None,
        cache_dir: Path | None = None,
        status_file: Path | None = None,
    ) -> None:
        self.config = replace(config, model_control="explicit")
        self.server = EmbeddedServer(self.config, cache_dir=cache_dir)
        self.watchdog = watchdog or WatchdogConfig()
        self.deployments = list(repository_deployments(config.repository) if deployments is None else deployments)
        self.status_file = status_file
        self.events: collections.deque[Event] = collections.deque(maxlen=200)
        self.restarts = 0
        self.reloads = 0
        self.gave_up = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._released = threading.Event()  # set when shutdown is done with the server
        self._thread: threading.Thread | None = None
        self._reset_server_state()

    # -- lifecycle --------------------------------------------------------------------------
    def _reset_server_state(self) -> None:
        self.started_at = ""
        self.reloads_since_start = 0
        self._known: dict[int, processes.StubProcess] = {}  # pid -> stub of the current server
        self._retired: set[int] = set()  # stubs replaced by a reload: not watched any more
        self._regions: set[str] = set()  # shm regions of the current server's stubs
        self._probes: dict[str, ProbeResult] = {}
        self._last_ok: dict[str, str] = {}
        self._failing_since: dict[str, float] = {}
        self._failing_rounds = 0

    def _on_started(self) -> None:
        self.started_at = _now()
        self.server_pid = self.server.pid
        self.prober = Prober(
            self.server.http_url, timeout_s=self.watchdog.probe_timeout_s, inference_key=self.config.client_inference_key
        )
        self.control = RepositoryControl(self.server.http_url, self.config.admin_key)
        self._scan()

    def start(self) -> Supervisor:
        """Start the server (raises ServerError / ServerStartTimeout) and the watchdog thread."""
        with self._lock:
            self.server.start()
            self._on_started()
            self._write_status()
        if self.watchdog.interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="tritonize-watchdog", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.watchdog.interval_s):
            try:
                self.check_now()
            except Exception:  # noqa: BLE001 - the watchdog must outlive any one bad round; logged
                log.exception("watchdog round failed")
        # A server restarted from this thread has PR_SET_PDEATHSIG tied to this thread, not the
        # process: if the thread ended now, that server would get SIGTERM before the drain.
        self._released.wait()

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- one watchdog round -----------------------------------------------------------------
    def _record(self, event: Event) -> Event:
        self.events.append(event)
        level = logging.WARNING if event.kind.is_fault else logging.INFO
        duration = "" if event.duration_s is None else f" in {event.duration_s:.2f} s"
        log.log(level, "watchdog: %s %s%s %s", event.kind.value, event.model, duration, event.detail)
        return event

    def _scan(self) -> list[processes.StubProcess]:
        """Record the current stubs; return the watched ones that died since the last scan."""
        dead = []
        for pid, stub in list(self._known.items()):
            if processes.is_gone(pid):
                dead.append(stub)
                del self._known[pid]
        if self.server.pid is not None:
            for stub in processes.server_stubs(self.server.pid):
                self._regions.add(stub.shm_region)
                if stub.pid not in self._retired:
                    self._known[stub.pid] = stub
        return dead

    def _probe_all(self) -> list[ProbeResult]:
        results = []
        for name in self.deployments:
            result = self.prober.probe(name)
            previous = self._probes.get(name)
            self._probes[name] = result
            results.append(result)
            if result.ok:
                self._last_ok[name] = _now()
                continue
            self._failing_since.setdefault(name, time.monotonic())
            if previous is None or previous.ok or previous.error != result.error:
                self._record(Event(kind=EventKind.PROBE_FAILED, model=name, detail=result.error))
        return results

    def check_now(self) -> list[Event]:
        """One watchdog round: observe, decide (:func:`plan_recovery`), recover. Returns its events."""
        with self._lock:
            if self.gave_up or self._stop.is_set():
                return []
            first = len(self.events)
            running = self.server.is_running()
            if not running:
                code = self.server.process.returncode if self.server.process is not None else None
                self._record(Event(kind=EventKind.SERVER_EXITED, detail=f"exit code {code}"))
            dead = self._scan() if running else []
            for stub in dead:
                self._record(Event(kind=EventKind.STUB_DIED, model=stub.model, detail=f"{stub.instance} (pid {stub.pid})"))
            probes = self._probe_all() if running else []
            self._failing_rounds = self._failing_rounds + 1 if any(not p.ok for p in probes) else 0
            plan = plan_recovery(
                server_running=running,
                dead_stubs=dead,
                probes=probes,
                instance_models={s.instance: s.model for s in self._known.values()},
                failing_rounds=self._failing_rounds,
                reloads_since_start=self.reloads_since_start,
                config=self.watchdog,
            )
            self._recover(plan)
            self._note_recoveries()
            self._write_status()
            return list(self.events)[first:]

    def _recover(self, plan: Plan) -> None:
        if plan.empty:
            return
        if plan.reload:
            try:
                self._reload(plan.reload)
            except ServerError as exc:
                self._record(Event(kind=EventKind.RELOAD_FAILED, model=",".join(plan.reload), detail=str(exc)))
                self._restart(f"reload failed: {exc}")
                return
            self._probe_all()  # confirm, and time the recovery
            return
        self._restart(plan.restart or "")

    def _reload(self, models: tuple[str, ...]) -> None:
        for model in models:
            replaced = {pid for pid, stub in self._known.items() if stub.model == model}
            start = time.monotonic()
            killed = self._kill_replaced(replaced)  # a stub Triton gave up on must never resume
            self.control.reload(model)
            self._retired |= replaced
            for pid in replaced:
                self._known.pop(pid, None)
            self.reloads += 1
            self.reloads_since_start += 1
            detail = f"killed the old stub {', '.join(killed)}" if killed else ""
            self._record(Event(kind=EventKind.RELOADED, model=model, detail=detail, duration_s=time.monotonic() - start))
        states = self.control.index()
        for name in self.deployments:  # Triton reloads dependents itself; make sure of it
            if states.get(name) != "READY":
                self.control.load(name)
        self._scan()

    def _kill_replaced(self, pids: set[int]) -> list[str]:
        """SIGKILL the model's old stubs that are stopped (only PIDs this server's stubs have now).

        Healthy sibling instances are left to the unload, which lets their requests finish.
        """
        still = {s.pid: s for s in self.stubs() if s.pid in pids and s.stopped}
        killed = []
        for pid, stub in still.items():
            if not processes.kill(pid):
                continue
            killed.append(f"{stub.instance} (pid {pid}, state {stub.state})")
        return killed

    def _note_recoveries(self) -> None:
        for name, since in list(self._failing_since.items()):
            result = self._probes.get(name)
            if result is not None and result.ok:
                del self._failing_since[name]
                self._record(Event(kind=EventKind.RECOVERED, model=name, duration_s=time.monotonic() - since))

    def _restart(self, reason: str) -> None:
        start = time.monotonic()
        old_pid = self.server_pid
        self.server.stop(timeout_s=self.config.exit_timeout_s + EXIT_GRACE_S)
        processes.cleanup_after_server(old_pid, self._regions)
        if self.restarts >= self.watchdog.max_restarts:
            self.gave_up = True
            self._record(Event(kind=EventKind.GAVE_UP, detail=f"{self.restarts} restarts already; last reason: {reason}"))
            return
        self.restarts += 1
        kept = self._keep_log()
        failing = dict(self._failing_since)
        self._reset_server_state()
        self._failing_since = failing  # recovery is timed from the first failure, across the restart
        try:
            self.server.start()
        except TritonizeError as exc:
            self._record(Event(kind=EventKind.RESTART_FAILED, detail=f"{reason}; start failed: {exc}"))
            return
        self._on_started()
        detail = f"{reason}; previous log {kept}" if kept else reason
        self._record(Event(kind=EventKind.RESTARTED, detail=detail, duration_s=time.monotonic() - start))
        if self.deployments:
            self._probe_all()

    def _keep_log(self) -> Path | None:
        """Move the stopped server's log aside (the new server would overwrite it: same port)."""
        log_path = self.server.log_path
        kept = log_path.with_name(f"{log_path.stem}.before-restart-{self.restarts}{log_path.suffix}")
        try:
            log_path.replace(kept)
        except OSError:
            return None
        return kept

    # -- graceful stop ----------------------------------------------------------------------
    def shutdown(self) -> int:
        """Drain the deployments, stop tritonserver, clean up; returns tritonserver's exit code (0 clean).

        Bounded: the drain gets the exit timeout, tritonserver the rest of it plus a 5 s grace.
        """
        self._stop.set()
        try:
            with self._lock:  # waits for a round in progress
                code = self._stop_server()
        finally:
            self._released.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
        return 0 if code in (0, None) else (code if code > 0 else 1)

    def _stop_server(self) -> int | None:
        start = time.monotonic()
        deadline = start + self.config.exit_timeout_s
        pid = self.server.pid
        if pid is None:
            return None
        if self.server.is_running() and self.deployments:
            self._drain(deadline)
        code = self.server.stop(timeout_s=max(deadline + EXIT_GRACE_S - time.monotonic(), 0.1))
        processes.cleanup_after_server(pid, self._regions)
        self._record(Event(kind=EventKind.STOPPED, detail=f"exit code {code}", duration_s=time.monotonic() - start))
        self._write_status()
        return code

    def _drain(self, deadline: float) -> None:
        start = time.monotonic()
        for name in self.deployments:
            try:
                self.control.unload(name)
            except ServerError as exc:
                log.warning("drain: could not unload %s: %s", name, exc)
        done = self.control.wait_unloaded(self.deployments, deadline)
        detail = "in-flight requests finished" if done else "exit timeout reached with requests in flight"
        self._record(Event(kind=EventKind.DRAINED, detail=detail, duration_s=time.monotonic() - start))

    # -- what it saw ------------------------------------------------------------------------
    def stubs(self) -> list[processes.StubProcess]:
        return processes.server_stubs(self.server.pid) if self.server.pid is not None else []

    def memory(self) -> dict[str, int]:
        """RSS of tritonserver plus its live stubs, their open descriptors and threads, and the
        ``/dev/shm`` bytes of every region its stubs were started with (replaced stubs' included)."""
        pid = self.server.pid
        used = processes.footprint(pid) if pid is not None else None
        return {
            "rss_bytes": used.rss if used else 0,
            "fds": (used.server_fds or 0) + (used.stubs_fds or 0) if used else 0,
            "threads": (used.server_threads or 0) + (used.stubs_threads or 0) if used else 0,
            "shm_bytes": processes.shm_bytes(self._regions),
            "shm_regions": len(processes.existing_regions(self._regions)),
        }

    def status(self) -> dict[str, Any]:
        state = ServerState.GAVE_UP if self.gave_up else ServerState.SERVING if self.server.is_running() else ServerState.STOPPED
        if state is ServerState.SERVING and self._failing_since:
            state = ServerState.RECOVERING
        deployments = {}
        for name in self.deployments:
            probe = self._probes.get(name)
            entry: dict[str, Any] = probe.to_dict() if probe else {"ok": None}
            entry["last_ok_at"] = self._last_ok.get(name)
            deployments[name] = entry
        return {
            "updated_at": _now(),
            "state": state.value,
            "server": {
                "pid": self.server.pid,
                "http_url": self.server.http_url,
                "grpc_url": self.server.grpc_url,
                "metrics_url": self.server.metrics_url,
                "started_at": self.started_at,
                "restarts": self.restarts,
                "reloads": self.reloads,
                **(self.memory() if self.server.is_running() else {}),
                "stubs": [{"model": s.model, "instance": s.instance, "pid": s.pid, "state": s.state} for s in self.stubs()],
            },
            "deployments": deployments,
            "watchdog": {
                "interval_s": self.watchdog.interval_s,
                "probe_timeout_s": self.watchdog.probe_timeout_s,
                "failures_before_restart": self.watchdog.failures_before_restart,
                "reloads_before_restart": self.watchdog.reloads_before_restart,
                "max_restarts": self.watchdog.max_restarts,
            },
            "events": [e.to_dict() for e in list(self.events)[-50:]],
        }

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        try:
            write_status(self.status_file, self.status())
        except OSError as exc:
            log.warning("could not write the status file %s: %s", self.status_file, exc)
