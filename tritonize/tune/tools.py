"""The two NVIDIA tools ``tritonize tune`` drives: Model Analyzer and perf_analyzer.

Model Analyzer (PyPI ``triton-model-analyzer``, extra ``tune``) runs as its own command line,
``model-analyzer profile -f CONFIG``: its YAML is the interface, and none of its internals are
imported. perf_analyzer is the binary of the ``tritonclient`` 2.51 wheel (later wheels dropped
it, and the ``perf-analyzer`` package on PyPI is a placeholder); it pins ``protobuf<5``, so it
lives in a virtual environment of its own (``scripts/install_perf_analyzer.sh`` makes
``.cache/perf-venv``). It links ``libcudart.so.12`` even for plain HTTP/gRPC, which the
``nvidia-cuda-runtime-cu12`` wheel in that environment provides: its directory goes on the
library path of every process Model Analyzer starts. In the Triton SDK image both tools are
on ``PATH`` already.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tritonize.errors import TuneError

PERF_VENV = Path(".cache/perf-venv")  # relative to the project checkout, as scripts/install_perf_analyzer.sh makes it
INSTALL_HINT = "bash scripts/install_perf_analyzer.sh (or set PERF_ANALYZER / --perf-analyzer)"


def model_analyzer_command() -> list[str]:
    """``model-analyzer`` of this interpreter's environment, else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "model-analyzer"
    found = str(beside) if beside.exists() else shutil.which("model-analyzer")
    if not found:
        raise TuneError("Model Analyzer is not installed: pip install 'tritonize[tune]' (triton-model-analyzer)")
    return [found]


def find_perf_analyzer(explicit: Path | None = None) -> Path:
    """``explicit``, ``$PERF_ANALYZER``, ``perf_analyzer`` on ``PATH``, or ``.cache/perf-venv``'s, in that order."""
    candidates = [explicit, os.environ.get("PERF_ANALYZER"), shutil.which("perf_analyzer"), PERF_VENV / "bin" / "perf_analyzer"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    if explicit is not None:
        raise TuneError(f"perf_analyzer {explicit} is not a file")
    raise TuneError(f"perf_analyzer not found; install it: {INSTALL_HINT}")


def perf_analyzer_library_dirs(binary: Path) -> list[str]:
    """Where the libraries perf_analyzer links live when it came from a virtual environment (libcudart)."""
    venv = binary.parent.parent
    return sorted(str(p) for p in venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib") if p.is_dir())


def check_perf_analyzer(binary: Path, env: dict[str, str]) -> str:
    """perf_analyzer's version line; raises TuneError with its own error when it cannot start."""
    try:
        done = subprocess.run([str(binary), "--version"], env=env, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise TuneError(f"perf_analyzer {binary} cannot run: {exc}") from None
    lines = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise TuneError(f"perf_analyzer {binary} cannot run: {lines[-1] if lines else done.returncode}; {INSTALL_HINT}")
    return lines[0] if lines else "perf_analyzer"
