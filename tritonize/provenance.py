"""Where, when and from which code a measurement ran (`tritonize bench`, `tritonize tune`).

A throughput figure means nothing without the machine, the exact command and the commit that
produced it; the JSON carries them so the performance page renders them instead of someone
retyping them.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
ROOT = Path(__file__).resolve().parents[1]  # the checkout, when tritonize runs from one


def _cpu() -> dict[str, Any]:
    """Model name and the SIMD flags ONNX Runtime and PyTorch pick kernels by (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or None, set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break  # the first processor's block has both
    except OSError:
        pass
    return {"cpu_model": model, "cpus": os.cpu_count(), "simd_flags": [f for f in SIMD_FLAGS if f in flags]}


def _gpu() -> list[str]:
    """GPU names from ``nvidia-smi``; empty where there is none (the CPU-only case)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def git_state() -> dict[str, Any]:
    """The commit and whether tracked files differed from it; ``None`` outside a checkout (an installed wheel)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        return {
            "commit": head.stdout.strip(),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip()),
        }
    except OSError:
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """CPU model, cores and SIMD flags, GPUs, Python and kernel: what a measured figure depends on."""
    return {**_cpu(), "gpus": _gpu(), "python": platform.python_version(), "kernel": platform.release()}


def provenance(command: str | None = None) -> dict[str, Any]:
    """Date (UTC), machine, the command as typed (``None`` when called from Python) and the git commit."""
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "command": command,
        "git": git_state(),
    }


def typed_command() -> str:
    """This process's command line as ``tritonize ...`` (the console script's path left out)."""
    return shlex.join(["tritonize", *sys.argv[1:]])
