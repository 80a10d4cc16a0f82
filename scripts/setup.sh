#!/usr/bin/env bash
# Create .venv and install tritonize with everything the demo and the tests need.
# Idempotent: re-running only installs what pyproject.toml changed. Source it or run it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# nvidia-pytriton ships Python-backend stubs for 3.8-3.13; torch 2.13's CPU wheel on this
# machine kind is for 3.11, so prefer 3.11.
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.tritonize-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # Pin torch first: a bare "torch" requirement would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[all]"
  rm -f .venv/.tritonize-installed-*
  touch "$stamp"
fi
echo "tritonize installed in $(pwd)/.venv"

# Debian's docker-compose (1.29) validates docker-compose.yml in the tests (`docker-compose config`
# needs no Docker engine). CI runs as root: install it there; elsewhere say how.
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q docker-compose >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q docker-compose >/dev/null 2>&1; }) \
      && echo "installed Debian's docker-compose" \
      || echo "warning: apt-get install docker-compose failed; compose tests will skip" >&2
  else
    echo "note: compose validation tests skip without docker-compose: sudo apt-get install -y docker-compose" >&2
  fi
fi

# perf_analyzer (Model Analyzer runs it for `tritonize tune`) in its own venv, .cache/perf-venv.
bash scripts/install_perf_analyzer.sh || echo "warning: perf_analyzer not installed; tune tests will skip" >&2

# Debian's prometheus (2.42) gives prometheus and promtool: the monitoring tests check the generated
# config and rules with promtool and run a real Prometheus against an embedded server. Root-only, as above.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }) \
      && echo "installed Debian's prometheus (promtool)" \
      || echo "warning: apt-get install prometheus failed; monitoring tests will skip" >&2
  else
    echo "note: monitoring tests skip without promtool: sudo apt-get install -y prometheus" >&2
  fi
fi
