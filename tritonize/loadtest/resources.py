"""Server-side memory during a load test: tritonserver RSS, its Python-backend stubs, /dev/shm.

A soak that leaks shows up here rather than in latency: a sampler thread records, every
``interval_s``, the RSS of the ``tritonserver`` process and the summed RSS of its
``triton_python_backend_stub`` children, the bytes allocated to the ``/dev/shm`` files the server
maps (the Python backend's shared-memory regions: ours, not other processes'), and the whole
``/dev/shm`` filesystem's usage for context. The summary reports start, end, peak and growth.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STUB_NAME = "triton_python_backend_stub"
SHM_DIR = "/dev/shm"
MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ResourceSample:
    """One reading; ``None`` where the value could not be read (process gone, not Linux)."""

    elapsed_s: float
    server_rss: int | None
    stubs_rss: int | None
    stubs: int
    server_shm: int | None
    dev_shm_used: int | None


METRICS = ("server_rss", "stubs_rss", "server_shm", "dev_shm_used")


def find_listener_pid(port: int) -> int | None:
    """The pid of the process listening on local TCP ``port`` (the server), if this user may see it."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def _stubs(server: Any) -> list[Any]:
    import psutil

    found = []
    for child in server.children(recursive=True):
        with contextlib.suppress(psutil.Error, IndexError):
            if Path(child.cmdline()[0]).name == STUB_NAME:
                found.append(child)
    return found


def mapped_shm_bytes(pid: int) -> int | None:
    """Bytes allocated to the distinct ``/dev/shm`` files process ``pid`` maps (Linux ``/proc``)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    paths = {line.split(maxsplit=5)[5].strip() for line in maps.splitlines() if f" {SHM_DIR}/" in line}
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # unlinked or gone between the read and the stat
            total += os.stat(path.removesuffix(" (deleted)")).st_blocks * 512
    return total


def take_sample(pid: int, start: float) -> ResourceSample:
    """Read the server ``pid``, its stubs and /dev/shm once."""
    import psutil

    server_rss = stubs_rss = server_shm = None
    stubs: list[Any] = []
    try:
        server = psutil.Process(pid)
        server_rss = server.memory_info().rss
        stubs = _stubs(server)
        stubs_rss = 0
        for stub in stubs:
            with contextlib.suppress(psutil.Error):
                stubs_rss += stub.memory_info().rss
        server_shm = mapped_shm_bytes(pid)
    except psutil.Error:
        logger.debug("server process %d not readable", pid, exc_info=True)
    try:
        dev_shm_used = shutil.disk_usage(SHM_DIR).used
    except OSError:
        dev_shm_used = None
    return ResourceSample(
        elapsed_s=round(time.monotonic() - start, 3),
        server_rss=server_rss,
        stubs_rss=stubs_rss,
        stubs=len(stubs),
        server_shm=server_shm,
        dev_shm_used=dev_shm_used,
    )


class ResourceSampler:
    """Samples in a background thread between :meth:`start` and :meth:`stop` (a context manager)."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[ResourceSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(take_sample(self.pid, self._start))

    def start(self) -> ResourceSampler:
        self._start = time.monotonic()
        self.samples.append(take_sample(self.pid, self._start))  # the baseline, before any load
        self._thread.start()
        return self

    def stop(self) -> list[ResourceSample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10 * self.interval_s + 5)
        self.samples.append(take_sample(self.pid, self._start))  # after the load stopped
        return self.samples

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def summarize(samples: list[ResourceSample], pid: int, interval_s: float, warmup_s: float = 0.0) -> dict[str, Any]:
    """Start (before load), end (after it), peak and growth (end - start) per metric, in MB.

    ``growth_after_warmup_mb`` is end minus the first sample at or after ``warmup_s`` (the soak's
    ramp): the first requests load code and fill caches (measured: the stubs' RSS rises ~15 MB in
    the first seconds, then stays flat), which is not a leak; what grows after it may be.
    """
    out: dict[str, Any] = {"server_pid": pid, "samples": len(samples), "interval_s": interval_s, "warmup_s": warmup_s}
    for metric in METRICS:
        timed = [(s.elapsed_s, getattr(s, metric)) for s in samples if getattr(s, metric) is not None]
        if not timed:
            out[metric] = None
            continue
        values = [v for _, v in timed]
        warm = next((v for t, v in timed if t >= warmup_s), values[-1])
        out[metric] = {
            "start_mb": round(values[0] / MB, 2),
            "end_mb": round(values[-1] / MB, 2),
            "peak_mb": round(max(values) / MB, 2),
            "growth_mb": round((values[-1] - values[0]) / MB, 2),
            "growth_after_warmup_mb": round((values[-1] - warm) / MB, 2),
        }
    out["stubs"] = {"start": samples[0].stubs, "end": samples[-1].stubs} if samples else None
    return out


def write_csv(samples: list[ResourceSample], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ResourceSample)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)
    return path
