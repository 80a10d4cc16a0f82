"""What the server holds during a load test: RSS, /dev/shm, open descriptors and threads of
tritonserver and its Python-backend stubs, sampled over time, and how much each grew.

A soak that leaks shows up here rather than in latency: a sampler thread reads, every
``interval_s``, :func:`tritonize.serving.processes.footprint` (the same psutil reader the
supervisor's status uses) plus the whole ``/dev/shm`` filesystem's usage for context.

Growth is measured at equal load, after warm-up (see :class:`tritonize.loadtest.soak.GrowthWindows`):
the median of the samples in the *end* window minus the median in the *reference* window. Medians,
because a single sample can catch a transient (the supervisor's probe opens a connection for a
moment; a stub's allocator returns memory in steps); a leak moves the whole window.
"""

from __future__ import annotations

import csv
import logging
import statistics
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tritonize.loadtest.soak import GrowthWindows
from tritonize.serving import processes

logger = logging.getLogger(__name__)

MB = 1024 * 1024
MEMORY = ("server_rss", "stubs_rss", "server_shm")  # bytes; growth gated as a ratio
COUNTS = ("server_fds", "stubs_fds", "server_threads", "stubs_threads")  # growth gated as a count
METRICS = (*MEMORY, "dev_shm_used", *COUNTS)
LABELS = {
    "server_rss": "tritonserver RSS",
    "stubs_rss": "stubs RSS",
    "server_shm": "server /dev/shm",
    "dev_shm_used": "/dev/shm used (whole machine)",
    "server_fds": "tritonserver open fds",
    "stubs_fds": "stubs open fds",
    "server_threads": "tritonserver threads",
    "stubs_threads": "stubs threads",
}


@dataclass(frozen=True, kw_only=True)
class ResourceSample:
    """One reading; ``None`` where the value could not be read (process gone, not Linux).

    ``elapsed_s`` counts from the sampler's start, ``time_s`` is the wall clock (to align the
    samples with Locust's own history), ``server_pid`` the tritonserver read (it changes when a
    supervisor restarted the server).
    """

    elapsed_s: float
    time_s: float
    server_pid: int | None
    server_rss: int | None
    stubs_rss: int | None
    stubs: int
    server_shm: int | None
    dev_shm_used: int | None
    server_fds: int | None
    stubs_fds: int | None
    server_threads: int | None
    stubs_threads: int | None


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


def _dev_shm_used() -> int | None:
    import psutil

    try:
        return psutil.disk_usage(str(processes.SHM_DIR)).used
    except OSError:
        return None


def take_sample(pid: int | None, start: float) -> ResourceSample:
    """Read tritonserver ``pid``, its stubs and /dev/shm once (``pid`` None: only /dev/shm)."""
    used = processes.footprint(pid) if pid is not None else None
    values = {f: getattr(used, f) if used else None for f in (*MEMORY, *COUNTS)}
    return ResourceSample(
        elapsed_s=round(time.monotonic() - start, 3),
        time_s=round(time.time(), 3),
        server_pid=pid if used is not None and used.server_rss is not None else None,
        stubs=used.stubs if used else 0,
        dev_shm_used=_dev_shm_used(),
        **values,
    )


class ResourceSampler:
    """Samples in a background thread between :meth:`start` and :meth:`stop` (a context manager).

    With ``port``, a server that is gone is looked up again by the port it listened on: a
    supervised server restarted on the same ports keeps being sampled (and the new pid shows).
    """

    def __init__(self, pid: int, interval_s: float = 1.0, port: int | None = None) -> None:
        self.pid = pid
        self.port = port
        self.interval_s = interval_s
        self.samples: list[ResourceSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._start = time.monotonic()

    def _sample(self) -> ResourceSample:
        sample = take_sample(self.pid, self._start)
        if sample.server_pid is None and self.port is not None:
            found = find_listener_pid(self.port)
            if found is not None and found != self.pid:
                logger.warning("server pid %d is gone; sampling pid %d listening on port %d", self.pid, found, self.port)
                self.pid = found
                sample = take_sample(found, self._start)
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> ResourceSampler:
        self._start = time.monotonic()
        self._sample()  # the baseline, before any load
        self._thread.start()
        return self

    def stop(self) -> list[ResourceSample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10 * self.interval_s + 5)
        self._sample()  # after the load stopped
        return self.samples

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def _growth(timed: list[tuple[float, int]], windows: GrowthWindows, memory: bool) -> dict[str, Any]:
    """Medians of one metric in the reference and the end window and the growth between them:
    memory in MB with the ratio to the reference, descriptors and threads as counts (None: a
    window held no sample)."""
    reference = _median([v for t, v in timed if windows.reference_start_s <= t <= windows.reference_end_s])
    end = _median([v for t, v in timed if windows.end_start_s <= t <= windows.end_end_s])
    growth = end - reference if reference is not None and end is not None else None
    if not memory:
        return {"reference": reference, "end": end, "growth": growth}

    def mb(value: float | None) -> float | None:
        return None if value is None else round(value / MB, 2)

    ratio = round(growth / reference, 4) if growth is not None and reference else None
    return {"reference_mb": mb(reference), "end_mb": mb(end), "growth_mb": mb(growth), "growth_ratio": ratio}


def _ends(values: list[int]) -> dict[str, int]:
    return {"start": values[0], "end": values[-1], "peak": max(values)}


def summarize(
    samples: list[ResourceSample],
    pid: int,
    interval_s: float,
    windows: GrowthWindows | None = None,
    load_start_s: float | None = None,
) -> dict[str, Any]:
    """Start (before load), end (after it) and peak per metric; with ``windows``, the growth after
    warm-up (window times count from ``load_start_s``, the wall-clock start of the load; default:
    the first sample). Memory in MB, descriptors and threads as counts."""
    origin = load_start_s if load_start_s is not None else (samples[0].time_s if samples else 0.0)
    out: dict[str, Any] = {"server_pid": pid, "samples": len(samples), "interval_s": interval_s}
    if windows is not None:
        out["windows"] = asdict(windows)
        out["load_start_s"] = round(origin, 3)
    for metric in METRICS:
        timed = [(s.time_s - origin, getattr(s, metric)) for s in samples if getattr(s, metric) is not None]
        if not timed:
            out[metric] = None
            continue
        values = [v for _, v in timed]
        if metric in MEMORY or metric == "dev_shm_used":
            entry: dict[str, Any] = {f"{k}_mb": round(v / MB, 2) for k, v in _ends(values).items()}
        else:
            entry = _ends(values)
        if windows is not None and metric != "dev_shm_used":  # the whole machine's /dev/shm: context, not ours
            entry["after_warmup"] = _growth(timed, windows, memory=metric in MEMORY)
        out[metric] = entry
    out["stubs"] = {"start": samples[0].stubs, "end": samples[-1].stubs} if samples else None
    pids = [s.server_pid for s in samples if s.server_pid is not None]
    out["server_pids"] = list(dict.fromkeys(pids))  # in order; more than one: the server was restarted
    return out


def write_csv(samples: list[ResourceSample], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ResourceSample)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)
    return path


def read_csv(path: Path) -> list[ResourceSample]:
    """Samples written by :func:`write_csv` (empty cells read as None)."""
    types = {f.name: (float if f.name in ("elapsed_s", "time_s") else int) for f in fields(ResourceSample)}
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            ResourceSample(**{k: (types[k](v) if v not in ("", None) else None) for k, v in row.items() if k in types})
            for row in csv.DictReader(handle)
        ]
