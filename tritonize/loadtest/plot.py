"""Throughput and latency over time (Locust's ``<prefix>_stats_history.csv``) and the server's
resources over time (the load test's resource samples), as PNG files."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


def read_history(history_csv: Path) -> list[dict[str, float]]:
    """Rows of the ``Aggregated`` entry: seconds since start, users, requests/s, p50/p95/p99 (ms)."""
    rows: list[dict[str, float]] = []
    with history_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") != "Aggregated":
                continue

            def num(key: str, row: dict[str, str] = row) -> float:
                value = row.get(key, "")
                return float(value) if value not in ("", "N/A") else float("nan")

            rows.append(
                {
                    "t": num("Timestamp"),
                    "users": num("User Count"),
                    "rps": num("Requests/s"),
                    "p50": num("50%"),
                    "p95": num("95%"),
                    "p99": num("99%"),
                }
            )
    if rows:
        start = rows[0]["t"]
        for row in rows:
            row["t"] -= start
    return rows


def load_start(history_csv: Path) -> float | None:
    """Wall-clock second the load started: the first row of Locust's history (1 s resolution)."""
    with history_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                return float(row["Timestamp"])
            except (KeyError, ValueError):
                return None
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history_csv: Path, out_png: Path, title: str = "") -> Path | None:
    """Draw requests/s (top) and p50/p95/p99 latency (bottom) over time; ``None`` when no rows."""
    rows = read_history(history_csv)
    if not rows:
        return None
    plt = _pyplot()
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    top.plot(t, [r["rps"] for r in rows], label="requests/s")
    top.set_ylabel("requests/s")
    users = top.twinx()
    users.plot(t, [r["users"] for r in rows], color="grey", linestyle=":", label="users")
    users.set_ylabel("users")
    top.legend(loc="upper left")
    for key in ("p50", "p95", "p99"):
        bottom.plot(t, [r[key] for r in rows], label=key)
    bottom.set_ylabel("latency, ms (last 10 s window)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper left")
    return _save(plt, fig, out_png, title, dpi=100)


def _save(plt: Any, fig: Any, out_png: Path, title: str, dpi: int) -> Path:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


_RESOURCE_PANELS = (
    ("memory, MB", 1024 * 1024, (("server_rss", "tritonserver RSS"), ("stubs_rss", "stubs RSS"), ("server_shm", "server /dev/shm"))),
    ("open descriptors", 1, (("server_fds", "tritonserver"), ("stubs_fds", "stubs"))),
    ("threads", 1, (("server_threads", "tritonserver"), ("stubs_threads", "stubs"))),
)


def plot_resources(samples: list[Any], out_png: Path, title: str = "", summary: dict[str, Any] | None = None) -> Path | None:
    """Memory, descriptors and threads of the server and its stubs over time (``ResourceSample``
    rows); with a ``summary`` that has growth windows, both windows are shaded. ``None``: no samples."""
    if not samples:
        return None
    plt = _pyplot()
    origin = (summary or {}).get("load_start_s") or samples[0].time_s
    t = [s.time_s - origin for s in samples]
    fig, axes = plt.subplots(len(_RESOURCE_PANELS), 1, sharex=True, figsize=(8, 7))
    windows = (summary or {}).get("windows")
    for axis, (label, scale, series) in zip(axes, _RESOURCE_PANELS):
        for key, name in series:
            axis.plot(t, [math.nan if getattr(s, key) is None else getattr(s, key) / scale for s in samples], label=name)
        if windows:
            axis.axvspan(windows["reference_start_s"], windows["reference_end_s"], color="tab:green", alpha=0.15)
            axis.axvspan(windows["end_start_s"], windows["end_end_s"], color="tab:red", alpha=0.15)
        axis.set_ylabel(label)
        axis.legend(loc="upper left", fontsize="small")
    axes[-1].set_xlabel("seconds since the load started" + ("; shaded: reference and end windows" if windows else ""))
    return _save(plt, fig, out_png, title, dpi=80)
