"""The processes of one tritonserver, read from ``/proc``: its Python-backend stubs, memory, shm.

Why ``/proc``: Triton 2.51 reports neither stub PIDs nor stub health (a dead stub leaves the
model READY). A stub's command line says which server owns it, which model and instance it runs
and which ``/dev/shm`` region it shares (:func:`tritonize.triton_facts.parse_stub_command`). That is
enough to find the stub of a model (tests signal it), to notice when it died, and to clean up
after a server that was killed: its stubs outlive it for a while and its shm regions are never
unlinked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from tritonize.errors import ServerError
from tritonize.triton_facts import SHM_REGION_PREFIX, STUB_BINARY, parse_stub_command

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
_PROC = Path("/proc")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, kw_only=True)
class StubProcess:
    """One Python-backend stub: ``instance`` is Triton's instance name (``<model>_<group>_<index>``)."""

    pid: int
    server_pid: int
    model: str
    instance: str
    shm_region: str
    state: str  # /proc state letter: R/S running or sleeping, T stopped, Z zombie

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # the process exited between listing and reading
        return None


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` (``Z`` for a zombie), or None when it no longer exists."""
    raw = _read(_PROC / str(pid) / "stat")
    if raw is None:
        return None
    return raw.rsplit(b")", 1)[-1].split()[0].decode()


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 when it is gone)."""
    raw = _read(_PROC / str(pid) / "statm")
    return int(raw.split()[1]) * _PAGE if raw else 0


def parse_stub_cmdline(pid: int, argv: list[str], state: str = "S") -> StubProcess | None:
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
    stubs = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        raw = _read(entry / "cmdline")
        if not raw or STUB_BINARY.encode() not in raw:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        stub = parse_stub_cmdline(int(entry.name), argv, process_state(int(entry.name)) or "?")
        if stub is not None and stub.server_pid == server_pid:
            stubs.append(stub)
    return sorted(stubs, key=lambda s: s.instance)


def stub_of(server_pid: int, model: str) -> StubProcess:
    """The stub running ``model`` for ``server_pid``. Raises LookupError when there is none."""
    for stub in server_stubs(server_pid):
        if stub.model == model and stub.state != "Z":
            return stub
    raise LookupError(f"no Python-backend stub of model {model!r} under tritonserver pid {server_pid}")


def shm_bytes(regions: set[str] | list[str]) -> int:
    """Bytes of ``/dev/shm`` that the named regions occupy (allocated blocks; missing ones count 0)."""
    total = 0
    for name in regions:
        with contextlib.suppress(OSError):
            total += (SHM_DIR / name).stat().st_blocks * 512
    return total


def existing_regions(regions: set[str] | list[str]) -> set[str]:
    return {name for name in regions if (SHM_DIR / name).exists()}


def cleanup_after_server(server_pid: int, regions: set[str]) -> tuple[int, int]:
    """After ``server_pid`` is gone: kill its stubs still running, unlink the shm regions it used.

    Only processes whose command line names ``server_pid`` are signalled, and only regions
    recorded from those command lines are unlinked. Returns (stubs killed, regions removed).
    """
    if process_state(server_pid) not in (None, "Z"):
        raise ServerError(f"tritonserver pid {server_pid} is still running; not cleaning up after it")
    killed = 0
    for stub in server_stubs(server_pid):
        regions = regions | {stub.shm_region}
        with contextlib.suppress(ProcessLookupError):
            os.kill(stub.pid, signal.SIGKILL)
            killed += 1
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
