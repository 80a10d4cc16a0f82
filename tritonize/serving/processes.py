"""The processes of one tritonserver: its Python-backend stubs and what they hold (memory, /dev/shm,
descriptors, threads), read through psutil. The supervisor and the load test's sampler both read here.

Why command lines: Triton 2.51 reports neither stub PIDs nor stub health (a dead stub leaves the
model READY). A stub's command line says which server owns it, which model and instance it runs
and which ``/dev/shm`` region it shares (:func:`tritonize.triton_facts.parse_stub_command`). That is
enough to find the stub of a model (tests signal it), to notice when it died, and to clean up
after a server that was killed: its stubs outlive it for a while (re-parented, so no longer its
children) and its shm regions are never unlinked.

Why psutil: it reads the same ``/proc`` files portably and names process states, and it is
what the bench's CPU accounting already uses; one reader means the supervisor's status file and
the soak's figures count the same things.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.errors import ServerError
from tritonize.triton_facts import SHM_REGION_PREFIX, STUB_BINARY, parse_stub_command

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")


def _psutil() -> Any:
    """psutil is a serving dependency (pyproject ``dependencies``); imported here so the spec,
    export and repository code paths never load it."""
    import psutil

    return psutil


@dataclass(frozen=True, kw_only=True)
class StubProcess:
    """One Python-backend stub: ``instance`` is Triton's instance name (``<model>_<group>_<index>``);
    ``state`` is psutil's status name (``sleeping``, ``running``, ``stopped``, ``zombie``...)."""

    pid: int
    server_pid: int
    model: str
    instance: str
    shm_region: str
    state: str

    @property
    def stopped(self) -> bool:
        psutil = _psutil()
        return self.state in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def process_state(pid: int) -> str | None:
    """psutil's status name of ``pid`` (``zombie`` for a zombie), or None when it no longer exists."""
    psutil = _psutil()
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None


def is_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie has exited too: only its exit status is left)."""
    return process_state(pid) in (None, _psutil().STATUS_ZOMBIE)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 when it is gone)."""
    psutil = _psutil()
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def parse_stub_cmdline(pid: int, argv: list[str], state: str = "sleeping") -> StubProcess | None:
    """A :class:`StubProcess` from a command line, or None when it is not a Python-backend stub."""
    command = parse_stub_command(argv)
    if command is None:
        return None
    return StubProcess(
        pid=pid,
        server_pid=command.server_pid,
        model=command.model,
        instance=command.instance,
        shm_region=command.shm_region,
        state=state,
    )


def server_stubs(server_pid: int) -> list[StubProcess]:
    """Every live stub whose command line names ``server_pid``, orphans included (zombies have none)."""
    psutil = _psutil()
    stubs = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        argv = proc.info.get("cmdline") or []  # None or [] for processes this user may not read
        if not argv or STUB_BINARY not in argv[0]:
            continue
        stub = parse_stub_cmdline(proc.pid, argv, proc.info.get("status") or "?")
        if stub is not None and stub.server_pid == server_pid:
            stubs.append(stub)
    return sorted(stubs, key=lambda s: s.instance)


def stub_of(server_pid: int, model: str) -> StubProcess:
    """The stub running ``model`` for ``server_pid``. Raises LookupError when there is none."""
    for stub in server_stubs(server_pid):
        if stub.model == model and stub.state != _psutil().STATUS_ZOMBIE:
            return stub
    raise LookupError(f"no Python-backend stub of model {model!r} under tritonserver pid {server_pid}")


def kill(pid: int) -> bool:
    """SIGKILL ``pid``; False when it was already gone."""
    psutil = _psutil()
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        return False
    return True


def shm_bytes(regions: Iterable[str]) -> int:
    """Bytes of ``/dev/shm`` that the named regions occupy (allocated blocks; missing ones count 0)."""
    total = 0
    for name in set(regions):
        with contextlib.suppress(OSError):
            total += (SHM_DIR / name).stat().st_blocks * 512
    return total


def existing_regions(regions: Iterable[str]) -> set[str]:
    return {name for name in regions if (SHM_DIR / name).exists()}


def mapped_shm_bytes(pid: int) -> int | None:
    """Bytes allocated to the distinct ``/dev/shm`` files process ``pid`` maps (None when unreadable).

    The server maps every region of its stubs, including those of stubs that died or were replaced
    (2.51 unlinks them only at exit), so this is what the server holds in ``/dev/shm``.
    """
    psutil = _psutil()
    try:
        paths = {m.path for m in psutil.Process(pid).memory_maps(grouped=True)}
    except (psutil.Error, OSError):
        return None
    shm = {p.removesuffix(" (deleted)") for p in paths if p.startswith(f"{SHM_DIR}/")}
    total = 0
    for path in shm:
        with contextlib.suppress(OSError):  # unlinked or gone between the read and the stat
            total += os.stat(path).st_blocks * 512
    return total


@dataclass(frozen=True, kw_only=True)
class Footprint:
    """What one tritonserver and its stubs hold at one moment; ``None`` where unreadable (the server
    exited between two reads). Sums over stubs count the stubs alive at that moment."""

    server_rss: int | None
    stubs_rss: int | None
    stubs: int
    server_shm: int | None
    server_fds: int | None
    stubs_fds: int | None
    server_threads: int | None
    stubs_threads: int | None

    @property
    def rss(self) -> int:
        return (self.server_rss or 0) + (self.stubs_rss or 0)


def _usage(proc: Any) -> tuple[int, int, int]:
    """(rss, open descriptors, threads) of one psutil process, read at once."""
    with proc.oneshot():
        return proc.memory_info().rss, proc.num_fds(), proc.num_threads()


def footprint(server_pid: int) -> Footprint:
    """Read tritonserver ``server_pid`` and its live stubs once (a stub that exits meanwhile is skipped)."""
    psutil = _psutil()
    stubs = [s for s in server_stubs(server_pid) if s.state != psutil.STATUS_ZOMBIE]
    try:
        server = _usage(psutil.Process(server_pid))
    except psutil.Error:
        log.debug("tritonserver pid %d not readable", server_pid, exc_info=True)
        return Footprint(
            server_rss=None, stubs_rss=None, stubs=len(stubs), server_shm=None,
            server_fds=None, stubs_fds=None, server_threads=None, stubs_threads=None,
        )  # fmt: skip
    totals = [0, 0, 0]
    for stub in stubs:
        with contextlib.suppress(psutil.Error):
            for i, value in enumerate(_usage(psutil.Process(stub.pid))):
                totals[i] += value
    return Footprint(
        server_rss=server[0],
        stubs_rss=totals[0],
        stubs=len(stubs),
        server_shm=mapped_shm_bytes(server_pid),
        server_fds=server[1],
        stubs_fds=totals[1],
        server_threads=server[2],
        stubs_threads=totals[2],
    )


def cleanup_after_server(server_pid: int, regions: set[str]) -> tuple[int, int]:
    """After ``server_pid`` is gone: kill its stubs still running, unlink the shm regions it used.

    Only processes whose command line names ``server_pid`` are signalled, and only regions
    recorded from those command lines are unlinked. Returns (stubs killed, regions removed).
    """
    if not is_gone(server_pid):
        raise ServerError(f"tritonserver pid {server_pid} is still running; not cleaning up after it")
    killed = 0
    for stub in server_stubs(server_pid):
        regions = regions | {stub.shm_region}
        killed += kill(stub.pid)
    removed = 0
    for name in sorted(regions):
        if not name.startswith(SHM_REGION_PREFIX):
            continue
        with contextlib.suppress(FileNotFoundError):
            (SHM_DIR / name).unlink()
            removed += 1
    if killed or removed:
        log.info("after tritonserver pid %d: killed %d leftover stubs, removed %d shm regions", server_pid, killed, removed)
    return killed, removed
