"""The GPU server's tuning: compose services `tune-triton` + `tune` (profile tune) and a Kubernetes Job,
generated with the rest of the deployment files (their drift tests cover the checked-in copies)."""

from __future__ import annotations

import pytest

from tritonize.deploy import compose, tune
from tritonize.deploy.release import load_release
from tritonize.server import RESTRICTED_APIS
from tritonize.spec import Target, load_spec


@pytest.mark.parametrize("target", compose.TARGETS, ids=lambda t: t.value)
def test_compose_tune_services_are_opt_in_unpublished_and_share_the_serving_image(target):
    services = compose.compose_file(load_spec(), load_release(), target)["services"]
    server, runner = services[tune.SERVER_SERVICE], services[tune.SERVICE]
    assert server["profiles"] == [tune.PROFILE] and runner["profiles"] == [tune.PROFILE]  # not started by `up`
    assert "ports" not in server  # its model-repository API is open: compose network only
    assert server["image"] == services["triton"]["image"] and server["volumes"] == services["triton"]["volumes"]
    assert ("deploy" in runner) == (target is Target.GPU)  # Model Analyzer reads the GPUs it profiles
    assert f"--remote-grpc {tune.SERVER_SERVICE}:" in runner["command"] and f"--target {target.value}" in runner["command"]
    assert runner["build"]["args"]["SDK_IMAGE"] == load_release().triton_image + "-sdk"


def test_tuning_server_is_explicit_and_leaves_only_model_analyzers_apis_open():
    command = tune.tuning_server_command(load_spec().server, load_release(), Target.GPU, repository="/models", admin_key="k")
    assert "--model-control-mode=explicit" in command and "--model-control-mode=none" not in command
    restricted = next(a for a in command if a.startswith("--http-restricted-api=")).split("=", 1)[1].split(":")[0].split(",")
    assert set(restricted) == set(RESTRICTED_APIS) - set(tune.OPEN_FOR_MODEL_ANALYZER) and "shared-memory" in restricted


def test_kubernetes_tune_job_runs_the_server_as_a_native_sidecar_on_loopback():
    job = tune.tune_job(load_spec(), load_release(), Target.GPU)
    pod = job["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == tune.SERVER_SERVICE)
    assert sidecar["restartPolicy"] == "Always" and "--model-control-mode=explicit" in sidecar["args"]
    (runner,) = pod["containers"]
    assert "127.0.0.1:8001" in runner["args"] and runner["resources"]["limits"]["nvidia.com/gpu"] == load_spec().server.gpus
