"""Where tritonize keeps what it can rebuild: demo checkpoints, backend directories, logs.

A module of its own (not the build pipeline's) because the server and the benchmark need the
same directory without importing the build stage.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$TRITONIZE_CACHE``, else ``$XDG_CACHE_HOME/tritonize`` (``~/.cache/tritonize``)."""
    if os.environ.get("TRITONIZE_CACHE"):
        return Path(os.environ["TRITONIZE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tritonize"
