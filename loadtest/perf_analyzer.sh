#!/usr/bin/env bash
# NVIDIA perf_analyzer against a tritonize deployment, over HTTP and gRPC.
#
#   loadtest/perf_analyzer.sh                                   # server already on 8000/8001
#   loadtest/perf_analyzer.sh --start-server --repository model_repository
#   loadtest/perf_analyzer.sh --model distilbert_emotion --concurrency 1:32:8 --corpus my_labelled_texts.txt
#
# Recipe (works without a GPU or Docker): perf_analyzer from the tritonclient 2.51 wheel in its own
# venv (.cache/perf-venv, made by scripts/install_perf_analyzer.sh, which says why). String inputs come from an
# --input-data JSON file generated from the corpus. Stability flags are loose on purpose:
# on a shared 2-core machine the default 10% over 3 windows often never converges.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
VENV="${PERF_VENV:-$ROOT/.cache/perf-venv}"
MODEL=distilbert_emotion
HTTP_URL=127.0.0.1:8000
GRPC_URL=127.0.0.1:8001
CONCURRENCY=1:8:7
CORPUS=""
OUT="$ROOT/loadtest/results/perf_analyzer"
REPOSITORY=""
START_SERVER=0
RUN_TIMEOUT=300

usage() { sed -n '2,14p' "$0"; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --http-url) HTTP_URL="$2"; shift 2 ;;
    --grpc-url) GRPC_URL="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --corpus) CORPUS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --repository) REPOSITORY="$2"; shift 2 ;;
    --start-server) START_SERVER=1; shift ;;
    --timeout) RUN_TIMEOUT="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done

# 1-2. perf_analyzer in its own venv, with the system library it links.
bash "$ROOT/scripts/install_perf_analyzer.sh" "$VENV" >/dev/null
CUDART_DIR="$(echo "$VENV"/lib/python3*/site-packages/nvidia/cuda_runtime/lib)"
export LD_LIBRARY_PATH="$CUDART_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 3. Optionally our own embedded server on free ports.
mkdir -p "$OUT"
if [[ $START_SERVER -eq 1 ]]; then
  [[ -n "$REPOSITORY" ]] || { echo "--start-server needs --repository DIR" >&2; exit 2; }
  read -r HTTP_PORT GRPC_PORT METRICS_PORT < <("$PY" -c "from tritonize.server import free_port; print(free_port(), free_port(), free_port())")
  HTTP_URL="127.0.0.1:$HTTP_PORT"; GRPC_URL="127.0.0.1:$GRPC_PORT"
  "$PY" -m tritonize.cli serve --repository "$REPOSITORY" --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
    --metrics-port "$METRICS_PORT" --expose-statistics >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill -INT $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 240); do
    curl -sf "http://$HTTP_URL/v2/health/ready" >/dev/null && break
    kill -0 $SERVER_PID 2>/dev/null || { echo "server exited; see $OUT/server.log" >&2; exit 1; }
    sleep 0.5
  done
fi
curl -sf "http://$HTTP_URL/v2/models/$MODEL/ready" >/dev/null \
  || { echo "model $MODEL is not ready at http://$HTTP_URL (start a server or pass --start-server)" >&2; exit 1; }

# 4. String inputs from the corpus (built-in emotion sentences by default).
INPUT="$OUT/input_data.json"
"$PY" - "$INPUT" "$CORPUS" <<'EOF'
import json, sys
from tritonize.loadtest.payload import corpus_texts, perf_analyzer_input
texts = corpus_texts(sys.argv[2] or None)
json.dump(perf_analyzer_input(texts), open(sys.argv[1], "w"))
print(f"{len(texts)} texts -> {sys.argv[1]}")
EOF

# 5. One sweep per protocol.
for PROTOCOL in http grpc; do
  URL=$HTTP_URL; [[ $PROTOCOL == grpc ]] && URL=$GRPC_URL
  echo "== perf_analyzer $MODEL over $PROTOCOL at $URL, concurrency $CONCURRENCY"
  timeout "$RUN_TIMEOUT" "$VENV/bin/perf_analyzer" -m "$MODEL" -u "$URL" -i "$PROTOCOL" \
    --input-data "$INPUT" --concurrency-range "$CONCURRENCY" \
    --stability-percentage 50 --max-trials 5 --measurement-interval 3000 \
    -f "$OUT/$PROTOCOL.csv" >"$OUT/$PROTOCOL.log" 2>&1 \
    || { echo "perf_analyzer failed ($PROTOCOL); log tail:" >&2; tail -20 "$OUT/$PROTOCOL.log" >&2; exit 1; }
  sed -n '/Inferences\/Second vs. Client/,$p' "$OUT/$PROTOCOL.log"
done
echo "CSV and logs in $OUT"
