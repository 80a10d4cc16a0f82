"""CPU accounting: the share of the machine this benchmark's own processes got during a row.

A saturating measurement (high concurrency, batched baselines) that gets clearly less than all
CPUs was competing with other processes: on a shared machine that is what makes two rows
measured minutes apart incomparable. psutil reads the process tree portably: this process,
every live descendant (the server it started, its Python-backend stubs, load-generator
processes) and the children it has already reaped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tritonize.bench.rows import Measurement, RowKey, latency_fields


def tree_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and its descendants (reaped ones included)."""
    import psutil

    try:
        root = psutil.Process()
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        total += times.user + times.system
        if process.pid == root.pid:  # reaped children of deeper processes are in their live parents
            total += times.children_user + times.children_system
    return total


class OwnCpu:
    """``with OwnCpu() as own: ...`` then ``own.share``: 0..1 of all CPUs, ``None`` if unreadable."""

    share: float | None = None

    def __enter__(self) -> OwnCpu:
        self._start = (time.monotonic(), tree_cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        end_time, end_cpu = time.monotonic(), tree_cpu_seconds()
        start_time, start_cpu = self._start
        if start_cpu is None or end_cpu is None or end_time <= start_time:
            return
        capacity = (end_time - start_time) * (os.cpu_count() or 1)
        self.share = min(1.0, max(0.0, (end_cpu - start_cpu) / capacity))


def measure(key: RowKey, texts: int | None, work: Callable[[], Any], **extra: Any) -> Measurement:
    """Run ``work`` under :class:`OwnCpu`; it returns seconds, or (seconds, per-request latencies).
    ``texts`` ``None``: one text per latency."""
    with OwnCpu() as own:
        out = work()
    seconds, latencies = out if isinstance(out, tuple) else (out, [])
    count = len(latencies) if texts is None else texts
    return Measurement(key=key, texts=count, seconds=seconds, cpu_share=own.share, **latency_fields(latencies), **extra)
