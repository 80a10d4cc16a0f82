"""``docker-compose.yml`` generated from the spec and the pinned release.

The stack: ``build`` fills ``./model_repository`` (TensorRT engines for the gpu target, ONNX for
cpu) from the project's own spec file (mounted, not the copy baked into the image), as the
invoking user (``TRITONIZE_UID``/``TRITONIZE_GID``), so the files it writes are the user's, not
root's, and exits; ``triton`` serves it once ``build`` completed; ``locust`` (Locust master + web UI)
and ``locust-worker`` (``--scale locust-worker=N``) load it once ``triton`` is healthy;
``locust-headless`` (profile ``headless``) runs ``tritonize loadtest`` and writes its summary;
profile ``monitoring`` adds Prometheus (rules), Grafana (the dashboard) and cAdvisor (container
memory), configured by the files ``tritonize deploy monitoring`` writes (see :mod:`monitoring`).
The gpu target reserves GPUs with a literal integer ``count`` and the cpu target reserves none;
both must pass Debian's ``docker-compose`` 1.29 ``config`` (so: no ``start_interval``).
"""

from __future__ import annotations

from typing import Any

from tritonize.deploy import images, monitoring, tune, yaml_io
from tritonize.deploy.release import Release
from tritonize.deploy.server_command import triton_command
from tritonize.errors import DeployError
from tritonize.server import ADMIN_HEADER
from tritonize.spec import DEFAULT_SPEC, ServerSpec, Spec, Target

TARGETS = (Target.GPU, Target.CPU)
DEFAULT_FILES = {Target.GPU: "docker-compose.yml", Target.CPU: "docker-compose.cpu.yml"}
REPOSITORY_DIR = "model_repository"  # on the host, beside the compose file
WORKSPACE = "/workspace"  # the project directory inside the build container
MODELS = "/models"  # the repository inside the triton container (read-only)
RESULTS = "/results"
ADMIN_KEY = "${TRITON_ADMIN_KEY:?set TRITON_ADMIN_KEY to a secret, for example the output of: openssl rand -hex 16}"
BIND = "${TRITON_BIND:-127.0.0.1}"  # loopback unless the operator exposes the ports
LOCUST_WEB_PORT = 8089  # Locust's own default
SPEC = f"${{TRITONIZE_SPEC:-tritonize/{DEFAULT_SPEC}}}"  # relative to the project directory (the working dir)
BUILD_USER = "${TRITONIZE_UID:-1000}:${TRITONIZE_GID:-1000}"  # the owner of what the build writes
CACHE_DIR = f"{WORKSPACE}/.cache"  # checkpoints, tokenizers, demo builds: in the project, owned by the user
HEALTH_START_PERIOD = "300s"  # engines and Python-backend stubs load before ready
LOADTEST_USERS = 32
LOADTEST_RUN_TIME = "60s"


def _gpu_reservation(count: int) -> dict[str, Any]:
    """``deploy.resources.reservations.devices``; ``count`` a literal int (1.29 rejects anything else)."""
    device = {"driver": "nvidia", "count": int(count), "capabilities": ["gpu"]}
    return {"resources": {"reservations": {"devices": [device]}}}


def _build_service(release: Release, target: Target) -> dict[str, Any]:
    """Runs ``tritonize build`` in the engine-build image.

    The project directory, not ``./model_repository`` itself, is mounted: the build stages the
    repository beside it and swaps it in with a rename, which a bind-mount point cannot take. The
    spec is read from the mounted project (``TRITONIZE_SPEC``, default ``tritonize/models.toml``):
    an edit there takes effect without rebuilding the image. The container runs as the user, not
    root, and keeps its caches under ``./.cache``, so ``./model_repository`` stays the user's.
    ``TRITONIZE_BUILD_ARGS`` adds flags (``--demo tiny``, ``--model NAME``) without editing this file.
    """
    image = images.engines_image(release)
    out = f"{WORKSPACE}/{REPOSITORY_DIR}"
    service: dict[str, Any] = {
        "build": image.compose_build(),
        "image": image.name,
        "command": f"build --spec {SPEC} --target {target.value} --out {out} ${{TRITONIZE_BUILD_ARGS:-}}",
        "working_dir": WORKSPACE,
        "user": BUILD_USER,
        "environment": {"HOME": f"{CACHE_DIR}/home", "XDG_CACHE_HOME": CACHE_DIR},
        "volumes": [f".:{WORKSPACE}"],
    }
    if target is Target.GPU:
        service["deploy"] = _gpu_reservation(1)  # one GPU of the kind that serves: engines are per architecture
    return service


def _triton_service(server: ServerSpec, release: Release, target: Target) -> dict[str, Any]:
    image = images.triton_image(release, target)
    ports = (server.http_port, server.grpc_port, server.metrics_port)
    service: dict[str, Any] = {
        "build": image.compose_build(),
        "image": image.name,
        "command": triton_command(server, release, target, repository=MODELS, admin_key=ADMIN_KEY),
        "volumes": [f"./{REPOSITORY_DIR}:{MODELS}:ro"],
        "ports": [f"{BIND}:{port}:{port}" for port in ports],
        "shm_size": _shm_size(server.shm_size_mib),
        "ulimits": {"memlock": -1, "stack": 67108864},
        "healthcheck": {
            "test": ["CMD", "curl", "-f", f"localhost:{server.http_port}/v2/health/ready"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 6,
            "start_period": HEALTH_START_PERIOD,
        },
        "depends_on": {"build": {"condition": "service_completed_successfully"}},
        "restart": "unless-stopped",
    }
    if target is Target.GPU:
        service["deploy"] = _gpu_reservation(server.gpus)
    return service


def _shm_size(mib: int) -> str:
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def _locust_services(spec: Spec, release: Release, target: Target) -> dict[str, Any]:
    """Locust master (web UI), scalable workers, and the headless run that writes the summary."""
    server = spec.server
    image = images.loadtest_image(release)
    model = f"${{LOCUST_MODEL:-{spec.models[0].name}}}"
    common = {"build": image.compose_build(), "image": image.name}
    locust = ["locust", "-f", images.LOCUSTFILE, "--host", f"http://triton:{server.http_port}", "--triton-model", model]
    healthy = {"triton": {"condition": "service_healthy"}}
    headless = [
        "tritonize", "loadtest",
        "--locustfile", images.LOCUSTFILE,
        "--url", f"triton:{server.grpc_port}",
        "--metrics-url", f"triton:{server.metrics_port}",
        "--protocol", "grpc",
        "--model", model,
        "--users", f"${{LOCUST_USERS:-{LOADTEST_USERS}}}",
        "--spawn-rate", f"${{LOCUST_USERS:-{LOADTEST_USERS}}}",
        "--run-time", f"${{LOCUST_RUN_TIME:-{LOADTEST_RUN_TIME}}}",
        "--admin-key", ADMIN_KEY,  # the statistics extension is behind the key
        "--out", RESULTS,
    ]  # fmt: skip
    return {
        "locust": {
            **common,
            "command": [*locust, "--master"],
            "ports": [f"{BIND}:{LOCUST_WEB_PORT}:{LOCUST_WEB_PORT}"],
            "depends_on": healthy,
        },
        "locust-worker": {
            **common,
            "command": [*locust, "--worker", "--master-host", "locust"],
            "depends_on": {"locust": {"condition": "service_started"}},
        },
        "locust-headless": {
            **common,
            "profiles": ["headless"],
            "command": headless,
            "volumes": [f"./loadtest/results/compose-{target.value}:{RESULTS}"],
            "depends_on": healthy,
        },
    }


def _monitoring_services() -> dict[str, Any]:
    """Prometheus scrapes triton and cAdvisor; Grafana shows the provisioned dashboard (profile monitoring)."""
    files = f"./{monitoring.COMPOSE_DIR}"
    profile = ["monitoring"]
    return {
        "prometheus": {
            "image": monitoring.PROMETHEUS_IMAGE,
            "profiles": profile,
            "command": [f"--config.file={monitoring.PROMETHEUS_DIR}/prometheus.yml", "--storage.tsdb.retention.time=15d"],
            "volumes": [f"{files}/prometheus:{monitoring.PROMETHEUS_DIR}:ro"],
            "ports": [f"{BIND}:{monitoring.PROMETHEUS_PORT}:{monitoring.PROMETHEUS_PORT}"],
            "restart": "unless-stopped",
        },
        "grafana": {
            "image": monitoring.GRAFANA_IMAGE,
            "profiles": profile,
            "environment": {"GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}"},
            "volumes": [
                f"{files}/grafana/provisioning:{monitoring.GRAFANA_PROVISIONING}:ro",
                f"{files}/grafana/dashboards:{monitoring.GRAFANA_DASHBOARDS}:ro",
            ],
            "ports": [f"{BIND}:{monitoring.GRAFANA_PORT}:{monitoring.GRAFANA_PORT}"],
            "depends_on": {"prometheus": {"condition": "service_started"}},
            "restart": "unless-stopped",
        },
        "cadvisor": {  # cAdvisor's documented docker run: read-only host mounts, /dev/kmsg, privileged
            "image": monitoring.CADVISOR_IMAGE,
            "profiles": profile,
            "privileged": True,
            "devices": ["/dev/kmsg"],
            "volumes": ["/:/rootfs:ro", "/var/run:/var/run:ro", "/sys:/sys:ro", "/var/lib/docker/:/var/lib/docker:ro"],
            "restart": "unless-stopped",
        },
    }


def compose_file(spec: Spec, release: Release, target: Target) -> dict[str, Any]:
    """The compose document for ``target`` (gpu or cpu) as plain data.

    Raises:
        DeployError: the target is not one compose deploys (``embedded`` runs without containers).
    """
    if target not in TARGETS:
        raise DeployError(f"compose deploys the {[t.value for t in TARGETS]} targets, not {target.value!r}")
    triton = _triton_service(spec.server, release, target)
    return {
        "services": {
            "build": _build_service(release, target),
            "triton": triton,
            **_locust_services(spec, release, target),
            **tune.compose_services(spec, release, target, triton=triton, models=MODELS, results=RESULTS, workspace=WORKSPACE),
            **_monitoring_services(),
        }
    }


def header(target: Target, release: Release) -> str:
    other = Target.CPU if target is Target.GPU else Target.GPU
    runs_on = "a GPU server (NVIDIA driver + NVIDIA Container Toolkit)" if target is Target.GPU else "any Docker host, no GPU"
    return f"""GENERATED by `tritonize deploy compose --target {target.value}` from tritonize/models.toml and
tritonize/deploy/versions.env (NGC {release.ngc_release}): edit those and regenerate; tests fail on drift.
Runs on {runs_on}; {DEFAULT_FILES[other]} is the {other.value} variant.

  export TRITON_ADMIN_KEY=$(openssl rand -hex 16)   # header '{ADMIN_HEADER}' for the restricted APIs
  export TRITONIZE_UID=$(id -u) TRITONIZE_GID=$(id -g)  # the build writes ./model_repository as you
  docker compose -f {DEFAULT_FILES[target]} up -d                  # build -> triton -> locust (web UI :{LOCUST_WEB_PORT})
  docker compose -f {DEFAULT_FILES[target]} up --scale locust-worker=4 -d
  docker compose -f {DEFAULT_FILES[target]} run --rm locust-headless  # summary in ./loadtest/results/compose-{target.value}/
  docker compose -f {DEFAULT_FILES[target]} --profile monitoring up -d  # + Prometheus :{monitoring.PROMETHEUS_PORT}, Grafana :{monitoring.GRAFANA_PORT}

TRITONIZE_BUILD_ARGS="--demo tiny" adds build flags; TRITONIZE_SPEC names another spec in this directory;
ports bind to 127.0.0.1 unless TRITON_BIND=0.0.0.0. docs/deploy.md explains the stack."""


def render(spec: Spec, release: Release, target: Target) -> str:
    return yaml_io.dump(compose_file(spec, release, target), header(target, release))

