"""Nearest-rank percentiles of measured latencies (bench rows, evaluation reports).

Nearest rank, not interpolation: a reported p99 is a latency that was actually measured.
"""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))  # 1-based
    return ordered[max(0, min(len(ordered), rank) - 1)]
