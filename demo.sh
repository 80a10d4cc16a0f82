#!/usr/bin/env bash
# README command 1: set up, build the tiny demo repository, start the embedded Triton server,
# answer requests over HTTP and gRPC, stop. Pass --size full for the real DistilBERT dimensions.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/tritonize demo "$@"
