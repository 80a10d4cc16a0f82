#!/usr/bin/env bash
# README command 2: set up and run the whole test suite (lint, unit, real-server integration).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
.venv/bin/ruff check tritonize tests loadtest clients build
exec .venv/bin/python -m pytest -q --durations=15 "$@"
