"""Throughput and latency over time, drawn from Locust's ``<prefix>_stats_history.csv``."""

from __future__ import annotations

import csv
from pathlib import Path


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


def plot_history(history_csv: Path, out_png: Path, title: str = "") -> Path | None:
    """Draw requests/s (top) and p50/p95/p99 latency (bottom) over time; ``None`` when no rows."""
    rows = read_history(history_csv)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
