#!/usr/bin/env bash
# Install NVIDIA perf_analyzer into its own virtual environment (default .cache/perf-venv) and check
# that it starts. Used by loadtest/perf_analyzer.sh, `tritonize tune` (Model Analyzer runs it) and
# scripts/setup.sh. Idempotent.
#
# Why its own venv: perf_analyzer ships as a binary in the tritonclient 2.51 wheel (later wheels
# dropped it), whose [all] extra pins protobuf<5, which the project's tritonclient does not accept.
# It links libb64 (Debian: libb64-0d) and libcudart (pip: nvidia-cuda-runtime-cu12, put on
# LD_LIBRARY_PATH by its callers), although it sends plain HTTP/gRPC here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${PERF_VENV:-$ROOT/.cache/perf-venv}}"

if [[ ! -x "$VENV/bin/perf_analyzer" ]]; then
  echo "installing tritonclient[all]==2.51.0 (perf_analyzer) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "tritonclient[all]==2.51.0" nvidia-cuda-runtime-cu12
fi

if ! ldconfig -p | grep -q libb64.so.0d; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q libb64-0d >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libb64-0d >/dev/null; }
  else
    echo "perf_analyzer needs libb64: sudo apt-get install -y libb64-0d" >&2; exit 1
  fi
fi
CUDART_DIR="$(echo "$VENV"/lib/python3*/site-packages/nvidia/cuda_runtime/lib)"
if LD_LIBRARY_PATH="$CUDART_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$VENV/bin/perf_analyzer" | grep -q "not found"; then
  echo "perf_analyzer has unresolved libraries:" >&2
  LD_LIBRARY_PATH="$CUDART_DIR" ldd "$VENV/bin/perf_analyzer" | grep "not found" >&2; exit 1
fi
echo "perf_analyzer ready: $VENV/bin/perf_analyzer"
