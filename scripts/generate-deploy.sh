#!/usr/bin/env bash
# Regenerate every checked-in deployment file from tritonize/models.toml and tritonize/deploy/versions.env:
# both compose files, the compose monitoring profile's files, both sets of Kubernetes manifests (monitoring
# resources included), and the README's release table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tritonize=.venv/bin/tritonize
"$tritonize" deploy compose --target gpu
"$tritonize" deploy compose --target cpu
"$tritonize" deploy monitoring --out deploy/monitoring
"$tritonize" deploy kubernetes --target gpu --out deploy/kubernetes/gpu
"$tritonize" deploy kubernetes --target cpu --out deploy/kubernetes/cpu
.venv/bin/python - <<'PY'
from pathlib import Path

from tritonize.deploy.release import MARKDOWN_BEGIN, MARKDOWN_END, load_release, markdown_table

readme = Path("README.md")
text = readme.read_text(encoding="utf-8")
start, end = text.index(MARKDOWN_BEGIN), text.index(MARKDOWN_END) + len(MARKDOWN_END) + 1
readme.write_text(text[:start] + markdown_table(load_release()) + text[end:], encoding="utf-8")
print("updated the release table in README.md")
PY
