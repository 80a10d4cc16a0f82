#!/usr/bin/env bash
# Regenerate every checked-in deployment file from tritonize/models.toml and tritonize/deploy/versions.env:
# both compose files, the compose monitoring profile's files, both sets of Kubernetes manifests (monitoring
# resources included), and the generated tables of docs/release.md and docs/security.md (the release, from
# versions.env; the crashers, from tritonize/triton_facts.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tritonize=.venv/bin/tritonize
"$tritonize" deploy compose --target gpu
"$tritonize" deploy compose --target cpu
"$tritonize" deploy monitoring --out deploy/monitoring
for target in gpu cpu; do
  rm -rf "deploy/kubernetes/$target"  # a resource dropped from the generator must not linger here
  "$tritonize" deploy kubernetes --target "$target" --out "deploy/kubernetes/$target"
done
"$tritonize" deploy release --update docs/release.md --update docs/security.md
