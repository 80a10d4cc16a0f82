#!/usr/bin/env bash
# The PyTorch runtime on a GPU machine, in one run: the gpu-marked tests, then `tritonize bench
# --runtime torch-cuda` (every GPU row and goal), then a Locust load test of the same repository.
# Results go to $OUT (default artifacts/gpu-bench): pytest.log, bench/bench.{json,md},
# loadtest/summary.{json,md}, environment.txt.
#
# What the machine needs: an NVIDIA GPU, a Python (3.10-3.13) with a CUDA build of torch and
# transformers (TORCH_PYTHON, default python3). No network is needed: the rest comes as wheels in
# WHEELS (pip download them elsewhere for that Python and platform), installed offline:
#   nvidia_pytriton-0.7.0 (the embedded tritonserver; installed with --no-deps into its own folder)
#   numpy<2 (the Python-backend stub of tritonserver 2.51 needs NumPy 1.x), tritonclient[grpc,http]
#   and its grpcio/aiohttp/geventhttpclient, onnx, onnxruntime, psutil, pytest, locust (optional).
# Whatever the torch environment already has is used from there; the script says what is missing.
#
# Why a separate venv: the stub runs the first `python3` on PATH with NumPy 1.x, while the torch
# environment may hold NumPy 2. The venv (.gpu-venv) has NumPy 1.26 first on its path and reaches
# the torch environment's packages through a .pth line; tritonize runs in it, so the stubs do too.
# The venv has no pip of its own: the torch environment's pip installs into it (pip --python).
#
#   WHEELS=/path/to/wheels bash scripts/gpu-bench.sh
#   Optional: CORPUS=file (text;label or TSV sentences, default the built-in emotion corpus),
#   TEXTS (texts per closed-loop row, default 2000), CLIENT_PROCESSES (default: half the cores),
#   DEMO (full | tiny, default full), PASSES (default 1), OUT, LOCUST_USERS (default 64), LOCUST_TIME (60s),
#   RUNTIME (torch-cuda; torch-cpu runs the same steps without a GPU: a dry run of this script).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
OUT="${OUT:-artifacts/gpu-bench}"
TORCH_PYTHON="${TORCH_PYTHON:-python3}"
VENV="${VENV:-.gpu-venv}"
DEMO="${DEMO:-full}"
TEXTS="${TEXTS:-2000}"
PASSES="${PASSES:-1}"
LOCUST_USERS="${LOCUST_USERS:-64}"
LOCUST_TIME="${LOCUST_TIME:-60s}"
RUNTIME="${RUNTIME:-torch-cuda}"
mkdir -p "$OUT"

[ "$RUNTIME" = "torch-cpu" ] || "$TORCH_PYTHON" - <<'EOF' || { echo "error: $TORCH_PYTHON has no torch with CUDA and a visible GPU" >&2; exit 1; }
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF

if [ ! -x "$VENV/bin/python" ]; then
  "$TORCH_PYTHON" -m venv --without-pip "$VENV"  # pip comes from the torch environment (--python)
fi
PY="$ROOT/$VENV/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TORCH_SITE="$("$TORCH_PYTHON" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
install() {  # offline, from WHEELS only, into the venv (pip >= 22.3 for --python)
  [ -n "${WHEELS:-}" ] || { echo "error: set WHEELS to a folder of wheels ($*)" >&2; exit 1; }
  "$TORCH_PYTHON" -m pip --python "$PY" install -q --no-index --find-links "$WHEELS" "$@"
}
if ! "$PY" -c 'import numpy, sys; sys.exit(not numpy.__version__.startswith("1."))' 2>/dev/null; then
  install "numpy<2"
fi
if [ ! -d "$ROOT/$VENV/pytriton/pytriton" ]; then
  [ -n "${WHEELS:-}" ] || { echo "error: set WHEELS to a folder holding the nvidia_pytriton wheel" >&2; exit 1; }
  "$TORCH_PYTHON" -m pip install -q --no-index --no-deps --target "$ROOT/$VENV/pytriton" "$WHEELS"/nvidia_pytriton-*.whl
fi
# Order matters: the venv's own packages (NumPy 1.x) first, then pytriton, tritonize, the torch env.
printf '%s\n' "$ROOT/$VENV/pytriton" "$ROOT" "$TORCH_SITE" > "$SITE/tritonize-gpu.pth"

missing="$("$PY" - <<'EOF'
import importlib.util
need = ["tritonclient.grpc", "tritonclient.http", "onnx", "onnxscript", "onnxruntime", "tokenizers", "transformers",
        "psutil", "pytest", "google.protobuf"]
print(" ".join(n for n in need if importlib.util.find_spec(n.split(".")[0]) is None or
               (n.startswith("tritonclient.") and importlib.util.find_spec(n) is None)))
EOF
)"
if [ -n "$missing" ]; then
  echo "installing from WHEELS: $missing"
  # shellcheck disable=SC2086 # one requirement per word
  install $(echo "$missing" | sed -e 's/tritonclient\.grpc/tritonclient[grpc]/; s/tritonclient\.http/tritonclient[http]/; s/google\.protobuf/protobuf/')
fi

tritonize() { "$PY" -c 'import sys; from tritonize.cli import main; sys.exit(main())' "$@"; }
{
  "$PY" -c 'import numpy, torch, transformers, onnxruntime; print("numpy", numpy.__version__, "torch", torch.__version__,
"transformers", transformers.__version__, "onnxruntime", onnxruntime.__version__)'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
  nproc
  git -C "$ROOT" rev-parse HEAD 2>/dev/null || true
} | tee "$OUT/environment.txt"

echo "== gpu-marked tests (CUDA graphs, FP16/BF16 parity, throughput smoke)"
"$PY" -m pytest -m gpu -v -p no:cacheprovider tests/test_torch_runtime.py tests/test_t5_decoding_torch.py \
  2>&1 | tee "$OUT/pytest.log" || echo "gpu tests failed: see $OUT/pytest.log (the bench still runs)"

echo "== tritonize bench --runtime $RUNTIME (builds the $DEMO demo on $RUNTIME, then every row)"
corpus=()
[ -n "${CORPUS:-}" ] && corpus=(--corpus "$CORPUS")
processes=()
[ -n "${CLIENT_PROCESSES:-}" ] && processes=(--client-processes "$CLIENT_PROCESSES")
tritonize bench --demo "$DEMO" --runtime "$RUNTIME" --texts "$TEXTS" --passes "$PASSES" \
  ${corpus[@]+"${corpus[@]}"} ${processes[@]+"${processes[@]}"} --out "$OUT/bench"

echo "== tritonize loadtest (Locust, 32-text requests) against the repository the bench built"
if "$PY" -c 'import locust' 2>/dev/null; then
  repository="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["served_repository"])' "$OUT/bench/bench.json")"
  tritonize loadtest --start-server --repository "$repository" --model distilbert_emotion --protocol grpc \
    --users "$LOCUST_USERS" --spawn-rate "$LOCUST_USERS" --run-time "$LOCUST_TIME" --texts-per-request 32 \
    ${corpus[@]+"${corpus[@]}"} --out "$OUT/loadtest" || echo "loadtest failed: see $OUT/loadtest"
else
  echo "locust is not installed: Locust run skipped (add its wheels to WHEELS)"
fi
echo "done: $OUT"
