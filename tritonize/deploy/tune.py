"""``tritonize tune`` on a GPU (or CPU) server: a compose service and a Kubernetes Job.

Both run Model Analyzer from the Triton SDK image of the pinned release (``<tag>-py3-sdk`` ships
Model Analyzer and perf_analyzer; tritonize is installed on top, ``build/Dockerfile.tune``) in
launch mode ``remote`` against a tritonserver started for tuning alone: the SDK image has no
tritonserver for ``local`` mode, and ``docker`` mode would need the Docker socket. That server is
the serving image with two differences, both because Model Analyzer loads each variant through
the model-repository API with a client that sends no headers: model control mode ``explicit``,
and the ``model-repository`` and ``statistics`` APIs left unrestricted. It therefore publishes no
port (compose network only; in Kubernetes it is a sidecar on the Job's loopback), and neither
service starts by default (compose profile ``tune``; the Job sits apart from the manifests that
``kubectl apply -f DIR`` applies).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tritonize.deploy import images, yaml_io
from tritonize.deploy import kubernetes as k8s
from tritonize.deploy.release import Release
from tritonize.deploy.server_command import server_options
from tritonize.server import ADMIN_HEADER, RESTRICTED_APIS
from tritonize.server_args import Restriction
from tritonize.spec import ServerSpec, Spec, Target

PROFILE = "tune"
SERVICE = "tune"
SERVER_SERVICE = "tune-triton"
OPEN_FOR_MODEL_ANALYZER = ("model-repository", "statistics")
SPEC_IN_WORKSPACE = "/workspace/tritonize/models.toml"  # the project mounted at /workspace: --write-spec edits the checkout
JOB_FILE = "tune/job-tune.yaml"  # a subdirectory: `kubectl apply -f DIR` does not start a tuning run
JOB_NAME = "tritonize-tune"


def tune_image(release: Release, registry: str = "") -> images.Image:
    """tritonize on the Triton SDK image of the release (Model Analyzer and perf_analyzer come with it)."""
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return images.Image(
        name=f"{prefix}tritonize/tune:{release.ngc_release}",
        dockerfile="build/Dockerfile.tune",
        args={"SDK_IMAGE": f"{release.triton_image}-sdk"},
    )


def tuning_server_command(
    server: ServerSpec, release: Release, target: Target, *, repository: str, admin_key: str
) -> list[str]:
    """The serving command of the stack (the same builder), with explicit model control and the two
    APIs Model Analyzer uses opened: it loads each configuration it tries through the repository API."""
    options = server_options(server, release, target, repository=repository, admin_key=admin_key)
    restricted = tuple(api for api in RESTRICTED_APIS if api not in OPEN_FOR_MODEL_ANALYZER)
    return dataclasses.replace(
        options, model_control="explicit", restrictions=(Restriction(apis=restricted, header=ADMIN_HEADER, key=admin_key),)
    ).args()


def default_model(spec: Spec) -> str:
    """The deployment tuned unless ``TUNE_MODEL`` says otherwise: the spec's first classifier."""
    return next((m.name for m in spec.models if not m.is_generative), spec.models[0].name)


def tune_arguments(
    spec: Spec, target: Target, host: str, *, model: str, repository: str, out: str, spec_path: str | None
) -> list[str]:
    """``tritonize tune`` against the tuning server at ``host`` (remote launch)."""
    server = spec.server
    return [
        "tune", "--model", model, "--target", target.value, "--repository", repository,
        *(["--spec", spec_path] if spec_path else []),
        "--remote-http", f"{host}:{server.http_port}", "--remote-grpc", f"{host}:{server.grpc_port}",
        "--remote-metrics", f"http://{host}:{server.metrics_port}/metrics", "--out", out,
    ]  # fmt: skip


def compose_services(
    spec: Spec, release: Release, target: Target, *, triton: dict[str, Any], models: str, results: str, workspace: str
) -> dict[str, Any]:
    """``tune-triton`` and ``tune`` (profile ``tune``): ``docker compose --profile tune run --rm tune``.

    ``triton``: the stack's serving service, whose image, volumes, /dev/shm and GPUs the tuning server
    shares (its command is the one thing that differs); ``models``: where it mounts the repository.
    """
    image = tune_image(release)
    admin_key = _admin_key(triton["command"])
    shared = {k: triton[k] for k in ("build", "image", "volumes", "shm_size", "ulimits", "depends_on", "deploy") if k in triton}
    model = f"${{TUNE_MODEL:-{default_model(spec)}}}"
    args = tune_arguments(spec, target, SERVER_SERVICE, model=model, repository=models, out=results, spec_path=SPEC_IN_WORKSPACE)
    return {
        SERVER_SERVICE: {
            **shared,
            "profiles": [PROFILE],
            "command": tuning_server_command(spec.server, release, target, repository=models, admin_key=admin_key),
        },
        SERVICE: {
            "build": image.compose_build(),
            "image": image.name,
            "profiles": [PROFILE],
            "command": " ".join(args) + " ${TRITONIZE_TUNE_ARGS:-}",
            "working_dir": workspace,
            "volumes": [f".:{workspace}", *triton["volumes"], f"./artifacts/tune-{target.value}:{results}"],
            "depends_on": {SERVER_SERVICE: {"condition": "service_started"}},
            **({"deploy": triton["deploy"]} if "deploy" in triton else {}),  # Model Analyzer reads the GPUs (DCGM)
        },
    }


def _admin_key(command: list[str]) -> str:
    """The admin key reference of a serving command (``...:<header>=<key>``)."""
    restriction = next(arg for arg in command if arg.startswith("--http-restricted-api="))
    return restriction.split(f"{ADMIN_HEADER}=", 1)[1]


def tune_job(spec: Spec, release: Release, target: Target, *, registry: str = "") -> dict[str, Any]:
    """A Job whose pod runs the tuning server as a native sidecar (Kubernetes >= 1.29) and Model Analyzer
    against it on loopback; results go to ``tune-results/`` on the models volume."""
    server = spec.server
    gpus = server.gpus if target is Target.GPU else 0
    sidecar = {
        "name": SERVER_SERVICE,
        "image": images.triton_image(release, target, registry).name,
        "restartPolicy": "Always",  # a native sidecar: the Job completes when the tune container exits
        "args": tuning_server_command(server, release, target, repository=k8s.REPOSITORY, admin_key=f"$({k8s.ADMIN_ENV})"),
        "env": [{"name": k8s.ADMIN_ENV, "valueFrom": {"secretKeyRef": {"name": k8s.ADMIN_SECRET, "key": k8s.ADMIN_SECRET_KEY}}}],
        "startupProbe": {"httpGet": {"path": "/v2/health/live", "port": server.http_port}, "periodSeconds": 10, "failureThreshold": 60},
        "resources": k8s.container_resources(server, target, gpus, shm=True),
        "volumeMounts": [{"name": "models", "mountPath": k8s.DATA, "readOnly": True}, {"name": "dshm", "mountPath": "/dev/shm"}],
    }
    tune = {
        "name": SERVICE,
        "image": tune_image(release, registry).name,
        "args": tune_arguments(
            spec, target, "127.0.0.1", model="$(TUNE_MODEL)", repository=k8s.REPOSITORY, out=f"{k8s.DATA}/tune-results", spec_path=None
        ),
        "env": [{"name": "TUNE_MODEL", "value": default_model(spec)}],
        "resources": k8s.container_resources(server, target, gpus, shm=False),
        "volumeMounts": [{"name": "models", "mountPath": k8s.DATA}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": k8s.object_meta(JOB_NAME, "tune"),
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": k8s.app_labels("tune")},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [sidecar],  # applied once the build Job has completed, as the serve set
                    "containers": [tune],
                    "volumes": [
                        {"name": "models", "persistentVolumeClaim": {"claimName": k8s.MODELS_CLAIM}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{server.shm_size_mib}Mi"}},
                    ],
                    **k8s.gpu_tolerations(target),
                },
            },
        },
    }


def write_tune_job(spec: Spec, release: Release, target: Target, out: Path, *, registry: str = "") -> Path:
    header = (
        f"GENERATED by `tritonize deploy kubernetes --target {target.value}` from tritonize/models.toml and\n"
        f"tritonize/deploy/versions.env (NGC {release.ngc_release}): Job. Not applied with the rest:\n"
        f"kubectl apply -f {JOB_FILE}  (Model Analyzer tunes {{TUNE_MODEL}}; results in tune-results/ on the models volume)"
    )
    return yaml_io.write(out / JOB_FILE, yaml_io.dump(tune_job(spec, release, target, registry=registry), header))
