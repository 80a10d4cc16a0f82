"""docker-compose.yml: valid for Compose, and consistent with what `tritonize build` writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tritonize.server import RESTRICTED_APIS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


def test_compose_serves_the_default_repository_read_only_with_restricted_admin_apis():
    service = yaml.safe_load(COMPOSE.read_text())["services"]["triton"]
    assert "./model_repository:/models:ro" in service["volumes"]
    command = " ".join(service["command"])
    assert "--model-control-mode=none" in command
    restricted = ",".join(RESTRICTED_APIS)  # the same endpoints `tritonize serve` closes
    assert f"--http-restricted-api={restricted}:admin-key=" in command
    assert f"--grpc-restricted-protocol={restricted}:admin-key=" in command
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()


def test_compose_file_validates_with_docker_compose():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    env = {**os.environ, "TRITON_ADMIN_KEY": "test-key"}
    result = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, env={k: v for k, v in env.items() if k != "TRITON_ADMIN_KEY"}, capture_output=True, text=True)
    assert missing.returncode != 0 and "TRITON_ADMIN_KEY" in missing.stderr
