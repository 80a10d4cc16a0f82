"""Kubernetes manifests: generated from the spec and the pinned release, valid against the Kubernetes
JSON schemas shipped by kubernetes-validate (offline, strict: unknown fields fail), carrying the spec's
values, and free of the small-cluster deadlock by construction (build set first, no server waits on it)."""

from __future__ import annotations

import copy
import filecmp
from pathlib import Path

import pytest
import yaml

from tritonize.cli import main as cli_main
from tritonize.deploy import images, kubernetes
from tritonize.deploy.release import load_release
from tritonize.errors import DeployError
from tritonize.server import ADMIN_HEADER, RESTRICTED_APIS
from tritonize.spec import Target, load_spec, parse_spec

DEPLOYMENT = f"{kubernetes.SERVE_SET}/deployment.yaml"
JOB = f"{kubernetes.BUILD_SET}/job-build.yaml"

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (test extra)")

ROOT = Path(__file__).resolve().parents[1]
# The oldest release still common in managed clusters and the newest the package ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
TARGETS = (Target.GPU, Target.CPU)


def _validate(resource: dict) -> None:
    for version in K8S_VERSIONS:
        # validate() raises SchemaNotFoundError for an unknown kind/apiVersion (the CLI only warns).
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.value)
def test_kubernetes_manifests_validate_against_schemas_when_generated(target):
    resources = kubernetes.manifests(load_spec(), load_release(), target)
    kinds = {r["kind"]: r["apiVersion"] for r in resources.values()}
    assert kinds == {
        "PersistentVolumeClaim": "v1",
        "PriorityClass": "scheduling.k8s.io/v1",
        "Job": "batch/v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
    }
    for resource in resources.values():
        _validate(resource)


def test_kubernetes_validation_rejects_a_broken_manifest_when_a_field_is_wrong():
    """The schema check is not vacuous: a wrong type and an unknown field both fail."""
    deployment = kubernetes.manifests(load_spec(), load_release(), Target.GPU)[DEPLOYMENT]
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    for broken in (wrong_type, unknown):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def _server_container(resources: dict) -> dict:
    return resources[DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.value)
def test_kubernetes_deployment_carries_spec_and_release_values_when_generated(target):
    spec, release = load_spec(), load_release()
    server = spec.server
    resources = kubernetes.manifests(spec, release, target)
    pod = resources[DEPLOYMENT]["spec"]["template"]["spec"]
    container = _server_container(resources)
    assert container["image"] == images.triton_image(release, target).name
    assert container["image"].endswith(f":{release.ngc_release}")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": server.http_port,
        "grpc": server.grpc_port,
        "metrics": server.metrics_port,
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    limits = container["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == (server.gpus if target is Target.GPU else None)
    assert container["resources"]["requests"]["memory"] == f"{server.memory_gib}Gi"
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{server.shm_size_mib}Mi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    restriction = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}=$({kubernetes.ADMIN_ENV})"
    assert f"--http-restricted-api={restriction}" in container["args"]
    assert f"--grpc-restricted-protocol={restriction}" in container["args"]
    assert f"--http-max-input-size={server.http_max_input_mib << 20}" in container["args"]
    pools = [a for a in container["args"] if a.startswith("--cuda-memory-pool-byte-size=")]
    assert pools == ([f"--cuda-memory-pool-byte-size=0:{server.cuda_memory_pool_mib << 20}"] if target is Target.GPU else [])
    secret = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert (container["env"][0]["name"], secret["name"]) == (kubernetes.ADMIN_ENV, kubernetes.ADMIN_SECRET)
    job = resources[JOB]["spec"]["template"]["spec"]["containers"][0]
    assert job["image"] == images.engines_image(release).name
    assert job["args"][:3] == ["build", "--target", target.value]
    assert job["resources"]["limits"].get("nvidia.com/gpu") == (1 if target is Target.GPU else None)
    assert ("tolerations" in pod) is (target is Target.GPU)


def test_kubernetes_scaling_resources_follow_spec_when_generated():
    spec = load_spec()
    server = spec.server
    resources = kubernetes.manifests(spec, load_release(), Target.GPU)
    hpa = resources[f"{kubernetes.SERVE_SET}/hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (spec.kubernetes.replicas, spec.kubernetes.max_replicas)
    metric = hpa["metrics"][0]["pods"]
    assert metric["metric"]["name"] == kubernetes.QUEUE_METRIC
    assert metric["target"] == {"type": "AverageValue", "averageValue": str(server.queue_time_target_us)}
    assert hpa["scaleTargetRef"]["name"] == resources[DEPLOYMENT]["metadata"]["name"]
    assert resources[f"{kubernetes.SERVE_SET}/pdb.yaml"]["spec"]["maxUnavailable"] == 1
    service_ports = {p["name"]: p["port"] for p in resources[f"{kubernetes.SERVE_SET}/service.yaml"]["spec"]["ports"]}
    assert service_ports == {"http": server.http_port, "grpc": server.grpc_port, "metrics": server.metrics_port}
    inference, metrics = resources[f"{kubernetes.SERVE_SET}/networkpolicy.yaml"]["spec"]["ingress"]
    assert "from" not in inference and [p["port"] for p in inference["ports"]] == [server.http_port, server.grpc_port]
    assert [p["port"] for p in metrics["ports"]] == [server.metrics_port]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {kubernetes.SCRAPER_LABEL: spec.kubernetes.monitoring_namespace}}}
    ]
    rule = kubernetes.adapter_values(spec)["rules"]["custom"][0]
    assert rule["name"]["as"] == kubernetes.QUEUE_METRIC
    assert rule["seriesQuery"].startswith("namespace_pod:nv_inference_queue_duration_us:mean")  # the recording rule


def test_kubernetes_follows_replicas_and_server_table_when_they_change():
    text = (ROOT / "tritonize" / "models.toml").read_text(encoding="utf-8")
    spec = parse_spec(text + "\n[server]\ngpus = 2\n[kubernetes]\nmax_replicas = 5\n", "x.toml")
    resources = kubernetes.manifests(spec, load_release(), Target.GPU, replicas=7, registry="registry.example/team")
    hpa = resources[f"{kubernetes.SERVE_SET}/hpa.yaml"]["spec"]
    assert resources[DEPLOYMENT]["spec"]["replicas"] == 7
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (7, 7)
    assert _server_container(resources)["resources"]["limits"]["nvidia.com/gpu"] == 2
    pool = spec.server.cuda_memory_pool_mib << 20  # one CUDA pool per GPU the server sees
    assert [a for a in _server_container(resources)["args"] if "cuda-memory-pool" in a] == [
        f"--cuda-memory-pool-byte-size=0:{pool}", f"--cuda-memory-pool-byte-size=1:{pool}"
    ]
    assert _server_container(resources)["image"].startswith("registry.example/team/tritonize/triton:")
    for resource in resources.values():
        _validate(resource)


def test_kubernetes_refuses_bad_requests_when_target_or_replicas_invalid():
    with pytest.raises(DeployError, match="embedded"):
        kubernetes.manifests(load_spec(), load_release(), Target.EMBEDDED)
    with pytest.raises(DeployError, match="replicas"):
        kubernetes.manifests(load_spec(), load_release(), Target.CPU, replicas=0)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.value)
def test_kubernetes_checked_in_manifests_equal_generation_when_cli_writes_them(tmp_path, target):
    out = tmp_path / target.value
    assert cli_main(["deploy", "kubernetes", "--target", target.value, "--out", str(out)]) == 0
    checked_in = ROOT / "deploy" / "kubernetes" / target.value
    fresh = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert fresh == sorted(p.relative_to(checked_in).as_posix() for p in checked_in.rglob("*.yaml"))
    drifted = [name for name in fresh if not filecmp.cmp(out / name, checked_in / name, shallow=False)]
    assert drifted == [], f"run `tritonize deploy kubernetes --target {target.value} --out deploy/kubernetes/{target.value}`"
    for name in fresh:
        if not name.startswith("monitoring/"):
            _validate(yaml.safe_load((out / name).read_text(encoding="utf-8")))


def test_cli_deploy_kubernetes_exits_1_with_message_when_replicas_zero(tmp_path, capsys):
    assert cli_main(["deploy", "kubernetes", "--target", "cpu", "--replicas", "0", "--out", str(tmp_path)]) == 1
    assert "--replicas must be >= 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _priority(resources: dict, name: str) -> int:
    return next(r["value"] for r in resources.values() if r["kind"] == "PriorityClass" and r["metadata"]["name"] == name)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.value)
def test_kubernetes_build_job_cannot_wait_behind_servers_holding_every_gpu(target):
    """The small-cluster deadlock, excluded by construction: the Job and the servers are separate sets
    applied in order, no server pod waits (holding its GPU) for the Job, the Job outranks the servers
    (a rebuild preempts a server), and a GPU rollout needs no spare GPU."""
    resources = kubernetes.manifests(load_spec(), load_release(), target)
    kinds = {path.split("/")[0]: set() for path in resources}
    for path, resource in resources.items():
        kinds[path.split("/")[0]].add(resource["kind"])
    assert kinds == {
        kubernetes.BUILD_SET: {"PersistentVolumeClaim", "PriorityClass", "Job"},
        kubernetes.SERVE_SET: {"PriorityClass", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"},
    }
    pod = resources[DEPLOYMENT]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    job_pod = resources[JOB]["spec"]["template"]["spec"]
    assert _priority(resources, job_pod["priorityClassName"]) > _priority(resources, pod["priorityClassName"])
    rollout = resources[DEPLOYMENT]["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxSurge"] == (0 if target is Target.GPU else 1) and rollout["maxUnavailable"] >= 0
    assert rollout["maxSurge"] + rollout["maxUnavailable"] >= 1  # a rollout can make progress
    assert f"kubectl apply -f {kubernetes.BUILD_SET}/" in kubernetes.APPLY_ORDER
    assert kubernetes.APPLY_ORDER.index(f"job/{kubernetes.BUILD_JOB}") < kubernetes.APPLY_ORDER.index(f"-f {kubernetes.SERVE_SET}/")
