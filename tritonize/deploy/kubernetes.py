"""Kubernetes manifests generated from the spec and the pinned release.

Two sets, one file per resource, applied in order (the build first, the servers once it completed):

    kubectl apply -f DIR/build/
    kubectl wait --for=condition=complete --timeout=2h job/tritonize-build
    kubectl apply -f DIR/serve/

Why two sets (the order is built in, not left to an init container): a server pod holds its GPU
from the moment it is scheduled. Servers applied together with the build Job, each waiting in an
init container for the Job's report, can take every GPU of a small cluster while the Job, which
needs one GPU itself, stays Pending: a deadlock. So the servers are not applied before the Job
completed, no server pod waits on the Job, and the Job's PriorityClass is above the servers' so a
rebuild can preempt a server instead of waiting behind it. GPU rollouts replace pods one at a time
(``maxSurge: 0``): a surge would need a spare GPU the cluster may not have.

- ``build/pvc.yaml``: the model repository volume, written once by the build Job, read by every server.
- ``build/priorityclass.yaml``: the build Job's priority, above the servers'.
- ``build/job-build.yaml``: ``tritonize build --target gpu|cpu`` in the engine-build image (the same
  image pairing as the compose ``build`` service); one GPU for the gpu target, because TensorRT
  engines are specific to the GPU architecture and TensorRT version that built them.
- ``serve/priorityclass.yaml``: the servers' priority (0, below the build's; never preempts).
- ``serve/deployment.yaml``: Triton servers (the pinned tritonserver image); readiness and
  liveness probes on ``/v2/health/ready`` and ``/live``; ``/dev/shm`` is an in-memory ``emptyDir``
  (the Python backend moves tensors through it, and it counts against the memory limit, hence
  limit = request + shm); the admin APIs are restricted with the key from a Secret.
- ``serve/service.yaml`` (HTTP, gRPC, metrics), ``serve/hpa.yaml``, ``serve/pdb.yaml``,
  ``serve/networkpolicy.yaml``.
- ``monitoring/prometheus-adapter-values.yaml``: the Prometheus adapter rule that turns Triton's
  counters into the HPA's metric (a Helm values file, not a resource: kept out of both sets).
- ``monitoring/resources/``: ServiceMonitor, rules and dashboard for the monitoring namespace
  (written by :mod:`tritonize.deploy.kubernetes_monitoring`).

Autoscaling: the HPA reads the pods metric ``triton_queue_duration_us_per_request``, which the
adapter takes from the recording rule :data:`tritonize.deploy.monitoring.QUEUE_PER_POD` (the one
definition of the expression: rate(``nv_inference_queue_duration_us``) / rate(``nv_inference_request_success``)
over all models of the pod, 0 while idle): the average time a request waited in a Triton queue.
Above the spec's ``queue_time_target_us`` the servers are saturated (requests queue), so the HPA
adds replicas. The rule reaches Prometheus through ``monitoring/resources/`` (see
:mod:`tritonize.deploy.kubernetes_monitoring`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tritonize.deploy import images, monitoring, yaml_io
from tritonize.deploy.release import Release
from tritonize.deploy.server_command import triton_command
from tritonize.errors import DeployError
from tritonize.spec import KubernetesSpec, ServerSpec, Spec, Target

TARGETS = (Target.GPU, Target.CPU)
APP = "tritonize"
SERVER = f"{APP}-triton"
BUILD_JOB = f"{APP}-build"
BUILD_PRIORITY = f"{APP}-build"
SERVE_PRIORITY = f"{APP}-serve"
BUILD_PRIORITY_VALUE = 1000  # above the servers' 0: a (re)build preempts a server rather than waiting for a GPU
BUILD_SET, SERVE_SET = "build", "serve"  # applied in this order; kubectl wait for the Job in between
MODELS_CLAIM = f"{APP}-models"
ADMIN_SECRET = f"{APP}-admin"
ADMIN_SECRET_KEY = "admin-key"
ADMIN_ENV = "TRITON_ADMIN_KEY"
DATA = "/data"  # the models volume; the repository is a directory in it, so the build can swap it by rename
REPOSITORY = f"{DATA}/model_repository"
GPU_RESOURCE = "nvidia.com/gpu"
QUEUE_METRIC = "triton_queue_duration_us_per_request"
SCRAPER_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by Kubernetes itself


def app_labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def service_labels() -> dict[str, str]:
    """The labels of the Triton Service (what a ServiceMonitor selects)."""
    return app_labels("triton")


def object_meta(name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": app_labels(component), **extra}


def _cpu(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def container_resources(server: ServerSpec, target: Target, gpus: int, *, shm: bool) -> dict[str, Any]:
    """Requests from the spec; the memory limit adds the in-memory /dev/shm, which is charged to the pod."""
    memory_mib = server.memory_gib * 1024 + (server.shm_size_mib if shm else 0)
    requests: dict[str, Any] = {"cpu": _cpu(server.cpus), "memory": f"{server.memory_gib}Gi"}
    limits: dict[str, Any] = {"memory": f"{memory_mib}Mi"}
    if target is Target.GPU:
        limits[GPU_RESOURCE] = gpus  # extended resources: the request defaults to the limit
    return {"requests": requests, "limits": limits}


def gpu_tolerations(target: Target) -> dict[str, Any]:
    """GPU node pools are commonly tainted ``nvidia.com/gpu:NoSchedule``; tolerate it only where a GPU is asked for."""
    if target is not Target.GPU:
        return {}
    return {"tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]}


def models_claim(cluster: KubernetesSpec) -> dict[str, Any]:
    """ReadWriteMany: one Job writes it, servers on several nodes read it (RWO works on a single node)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(MODELS_CLAIM, "model-repository"),
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": f"{cluster.storage_gib}Gi"}},
        },
    }


def priority_class(name: str, value: int, description: str, *, preempts: bool) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": object_meta(name, "scheduling"),
        "value": value,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority" if preempts else "Never",
        "description": description,
    }


def build_job(server: ServerSpec, release: Release, target: Target, registry: str) -> dict[str, Any]:
    image = images.engines_image(release, registry)
    container = {
        "name": "build",
        "image": image.name,
        "args": ["build", "--target", target.value, "--out", REPOSITORY],
        "workingDir": DATA,
        "env": [
            {"name": "TRITONIZE_CACHE", "value": f"{DATA}/.cache/tritonize"},
            {"name": "HF_HOME", "value": f"{DATA}/.cache/huggingface"},
        ],
        "resources": container_resources(server, target, 1, shm=False),
        "volumeMounts": [{"name": "models", "mountPath": DATA}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_meta(BUILD_JOB, "engine-build"),
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": app_labels("engine-build")},
                "spec": {
                    "restartPolicy": "Never",
                    "priorityClassName": BUILD_PRIORITY,
                    "containers": [container],
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": MODELS_CLAIM}}],
                    **gpu_tolerations(target),
                },
            },
        },
    }


def _http_probe(path: str, port: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures}


def _server_container(server: ServerSpec, release: Release, target: Target, registry: str) -> dict[str, Any]:
    ports = (("http", server.http_port), ("grpc", server.grpc_port), ("metrics", server.metrics_port))
    return {
        "name": "triton",
        "image": images.triton_image(release, target, registry).name,
        # $(VAR) is expanded by the kubelet from the container's env: the key never appears in the manifest.
        "args": triton_command(server, release, target, repository=REPOSITORY, admin_key=f"$({ADMIN_ENV})"),
        "env": [
            {
                "name": ADMIN_ENV,
                "valueFrom": {"secretKeyRef": {"name": ADMIN_SECRET, "key": ADMIN_SECRET_KEY}},
            }
        ],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports],
        # Loading engines and Python-backend stubs takes minutes: liveness waits for the startup probe.
        "startupProbe": _http_probe("/v2/health/live", "http", period=10, failures=60),
        "readinessProbe": _http_probe("/v2/health/ready", "http", period=5, failures=3),
        "livenessProbe": _http_probe("/v2/health/live", "http", period=10, failures=3),
        "resources": container_resources(server, target, server.gpus, shm=True),
        "volumeMounts": [
            {"name": "models", "mountPath": DATA, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
    }


def triton_deployment(
    server: ServerSpec, release: Release, target: Target, replicas: int, registry: str
) -> dict[str, Any]:
    pod_labels = app_labels("triton")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(SERVER, "triton"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": _rollout(target)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(server.metrics_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "priorityClassName": SERVE_PRIORITY,
                    "containers": [_server_container(server, release, target, registry)],
                    "volumes": [
                        {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_CLAIM, "readOnly": True}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{server.shm_size_mib}Mi"}},
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": pod_labels},
                        }
                    ],
                    "terminationGracePeriodSeconds": 60,
                    **gpu_tolerations(target),
                },
            },
        },
    }


def _rollout(target: Target) -> dict[str, int]:
    """GPU: replace one pod at a time (a surge pod would wait for a GPU no one frees); CPU: surge, no downtime."""
    return {"maxSurge": 0, "maxUnavailable": 1} if target is Target.GPU else {"maxSurge": 1, "maxUnavailable": 0}


def triton_service(server: ServerSpec) -> dict[str, Any]:
    ports = (("http", server.http_port), ("grpc", server.grpc_port), ("metrics", server.metrics_port))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(SERVER, "triton"),
        "spec": {
            "type": "ClusterIP",
            "selector": app_labels("triton"),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP", "appProtocol": app}
                for (name, port), app in zip(ports, ("http", "kubernetes.io/h2c", "http"))
            ],
        },
    }


def autoscaler(server: ServerSpec, replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(SERVER, "triton"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVER},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(server.queue_time_target_us)},
                    },
                }
            ],
            # A new GPU server takes minutes to load its engines: scale up at once, down slowly.
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
                "scaleDown": {"stabilizationWindowSeconds": 600, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
            },
        },
    }


def disruption_budget() -> dict[str, Any]:
    """maxUnavailable 1, not minAvailable: with a single replica minAvailable 1 would block every node drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(SERVER, "triton"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": app_labels("triton")}},
    }


def network_policy(server: ServerSpec, cluster: KubernetesSpec) -> dict[str, Any]:
    """Inference ports open to any client the cluster routes here; the metrics port only to the monitoring namespace."""
    monitoring = {"namespaceSelector": {"matchLabels": {SCRAPER_LABEL: cluster.monitoring_namespace}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(SERVER, "triton"),
        "spec": {
            "podSelector": {"matchLabels": app_labels("triton")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": p} for p in (server.http_port, server.grpc_port)]},
                {"from": [monitoring], "ports": [{"protocol": "TCP", "port": server.metrics_port}]},
            ],
        },
    }


def adapter_values(spec: Spec) -> dict[str, Any]:
    """prometheus-adapter Helm values: the custom metric the HPA reads, per pod, from the recorded
    series of :data:`tritonize.deploy.monitoring.QUEUE_PER_POD` (idle pods record 0, so the HPA
    can scale down)."""
    series = monitoring.name(monitoring.QUEUE_PER_POD, spec)
    return {
        "rules": {
            "custom": [
                {
                    "seriesQuery": f'{series}{{namespace!="",pod!=""}}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                    "name": {"matches": f"^{series}$", "as": QUEUE_METRIC},
                    "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                }
            ]
        }
    }


def manifests(
    spec: Spec, release: Release, target: Target, *, replicas: int | None = None, registry: str = ""
) -> dict[str, dict[str, Any]]:
    """Path under the output directory (``build/...`` or ``serve/...``) -> resource, for ``target`` (gpu or cpu).

    ``replicas`` (default: the spec's) is the Deployment's size and the autoscaler's floor; the
    ceiling is the spec's ``max_replicas``, raised to ``replicas`` when that is larger.

    Raises:
        DeployError: an unknown target or a replica count below 1.
    """
    if target not in TARGETS:
        raise DeployError(f"Kubernetes deploys the {[t.value for t in TARGETS]} targets, not {target.value!r}")
    server = spec.server
    cluster = spec.kubernetes
    count = cluster.replicas if replicas is None else replicas
    if count < 1:
        raise DeployError(f"--replicas must be >= 1, got {count}")
    build_priority = priority_class(
        BUILD_PRIORITY, BUILD_PRIORITY_VALUE, "tritonize build Job: may preempt a tritonize server for its GPU", preempts=True
    )
    serve_priority = priority_class(SERVE_PRIORITY, 0, "tritonize Triton servers: below the build Job", preempts=False)
    return {
        f"{BUILD_SET}/pvc.yaml": models_claim(cluster),
        f"{BUILD_SET}/priorityclass.yaml": build_priority,
        f"{BUILD_SET}/job-build.yaml": build_job(server, release, target, registry),
        f"{SERVE_SET}/priorityclass.yaml": serve_priority,
        f"{SERVE_SET}/deployment.yaml": triton_deployment(server, release, target, count, registry),
        f"{SERVE_SET}/service.yaml": triton_service(server),
        f"{SERVE_SET}/hpa.yaml": autoscaler(server, count, max(cluster.max_replicas, count)),
        f"{SERVE_SET}/pdb.yaml": disruption_budget(),
        f"{SERVE_SET}/networkpolicy.yaml": network_policy(server, cluster),
    }


ADAPTER_FILE = "monitoring/prometheus-adapter-values.yaml"


APPLY_ORDER = (
    f"Apply in order: kubectl apply -f {BUILD_SET}/ && kubectl wait --for=condition=complete --timeout=2h "
    f"job/{BUILD_JOB} && kubectl apply -f {SERVE_SET}/"
)


def _header(target: Target, release: Release, what: str) -> str:
    return (
        f"GENERATED by `tritonize deploy kubernetes --target {target.value}` from tritonize/models.toml and\n"
        f"tritonize/deploy/versions.env (NGC {release.ngc_release}): {what}\n{APPLY_ORDER}"
    )


def write_manifests(
    spec: Spec, release: Release, target: Target, out: Path, *, replicas: int | None = None, registry: str = ""
) -> list[Path]:
    """Write every manifest plus the adapter values into ``out``; returns the paths written."""
    written = [
        yaml_io.write(out / name, yaml_io.dump(resource, _header(target, release, f"{resource['kind']}.")))
        for name, resource in manifests(spec, release, target, replicas=replicas, registry=registry).items()
    ]
    adapter_note = (
        "prometheus-adapter Helm values\n(helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter"
        f" -n {spec.kubernetes.monitoring_namespace} -f {ADAPTER_FILE}).\n"
        f"The HPA in hpa.yaml reads {QUEUE_METRIC} through the custom metrics API."
    )
    written.append(yaml_io.write(out / ADAPTER_FILE, yaml_io.dump(adapter_values(spec), _header(target, release, adapter_note))))
    return written
