"""Prometheus scrape config, recording and alerting rules, and a Grafana dashboard, from the spec.

Every expression is built here once and read by name everywhere else: the dashboard panels and the
alerts query the recording rules, and the Kubernetes autoscaler's custom metric (prometheus-adapter,
see :mod:`tritonize.deploy.kubernetes`) reads :data:`QUEUE_PER_POD`'s recorded series. Names follow
Prometheus's ``level:metric:operations`` convention (https://prometheus.io/docs/practices/rules/).

What Triton exports (2.51, scraped from the embedded server; the pinned NGC release's metrics.md
adds only ``nv_inference_first_response_histogram_ms``, for decoupled models, behind
``--metrics-config histogram_latencies=true``): per model and version ``nv_inference_request_success``,
``nv_inference_request_failure`` (label ``reason``: REJECTED, CANCELED, BACKEND, OTHER),
``nv_inference_count``, ``nv_inference_exec_count``, ``nv_inference_pending_request_count`` and the
cumulative ``nv_inference_{request,queue,compute_input,compute_infer,compute_output}_duration_us``;
per server ``nv_cpu_utilization``, ``nv_cpu_memory_{total,used}_bytes`` (the whole host's memory,
from /proc/meminfo) and ``nv_pinned_memory_pool_{total,used}_bytes``; per GPU, only where there is
one, ``nv_gpu_utilization``, ``nv_gpu_memory_{total,used}_bytes``, ``nv_gpu_power_{usage,limit}``
and ``nv_energy_consumption`` (triton-inference-server/server docs/user_guide/metrics.md, v2.51.0
and v2.59.1). Triton reports nothing about its own process, so the process-memory panel reads
cAdvisor (the kubelet's in Kubernetes, a cAdvisor service in compose).

How Triton 2.51 counts refusals (measured on the embedded server, ensemble of one step, queue of
2): a request refused because a step's queue was full is counted only at the ensemble, as a
failure with reason OTHER, twice (Triton's metrics.md: the composing failure and the top-level
one); a request that timed out in a step's queue is REJECTED at the step. The failure ratio
therefore excludes REJECTED, and an ensemble's failure ratio includes its queue-full refusals.
A model's series exist only while it is loaded (they vanish on unload), which is how the
"deployment not ready" alert sees a deployment missing from a server that answers scrapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tritonize.spec import Spec

JOB = "triton"  # the scrape job of the Triton servers, in every generated scrape config
CADVISOR_JOB = "cadvisor"
# Monitoring images, pinned here only. Prometheus 2.53 is the 2.x long-term-support line (the rules
# and config are checked with Debian's promtool 2.42); Grafana 11.6 is the last 11.x minor.
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.3"
GRAFANA_IMAGE = "grafana/grafana:11.6.0"
CADVISOR_IMAGE = "gcr.io/cadvisor/cadvisor:v0.49.1"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
CADVISOR_PORT = 8080
DASHBOARD_UID = "tritonize-triton"
DASHBOARD_FILE = "tritonize-triton.json"
RULES_FILE = "tritonize.rules.yml"
DATASOURCE_UID = "prometheus"
GRAFANA_SCHEMA_VERSION = 39  # Grafana 11's dashboard JSON schema version
SERVER = f'job="{JOB}"'
TRITON_CONTAINER = "triton"  # the container (Kubernetes) / compose service that runs tritonserver

# Recording-rule names (the window suffix comes from the spec: four scrape intervals).
SUCCESS = "model:nv_inference_request_success:rate{w}"
FAILURE = "model:nv_inference_request_failure:rate{w}"
FAILURE_BY_REASON = "model_reason:nv_inference_request_failure:rate{w}"
FAILURE_RATIO = "model:nv_inference_request_failure:ratio_rate{w}"
REFUSAL_RATIO = "model:nv_inference_request_refusal:ratio_rate{w}"
BATCH_SIZE = "model:nv_inference_count_per_exec_count:ratio_rate{w}"
QUEUE_MEAN = "model:nv_inference_queue_duration_us:mean{w}"
COMPUTE_MEAN = "model:nv_inference_compute_infer_duration_us:mean{w}"
REQUEST_MEAN = "model:nv_inference_request_duration_us:mean{w}"
QUEUE_PER_POD = "namespace_pod:nv_inference_queue_duration_us:mean{w}"  # the autoscaler's metric
_RATES = ("nv_inference_count", "nv_inference_exec_count", "nv_inference_queue_duration_us",
          "nv_inference_compute_infer_duration_us", "nv_inference_request_duration_us")  # fmt: skip


def duration(seconds: int) -> str:
    """Prometheus duration text: ``60`` -> ``1m``, ``90`` -> ``90s``."""
    return f"{seconds // 60}m" if seconds and seconds % 60 == 0 else f"{seconds}s"


def window(spec: Spec) -> str:
    return duration(spec.monitoring.rate_window_s)


def name(template: str, spec: Spec) -> str:
    """A recording rule's name for the spec's rate window (``model:...:rate1m``)."""
    return template.format(w=window(spec))


@dataclass(frozen=True, kw_only=True)
class RecordingRule:
    record: str
    expr: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """One alert; ``labels`` add to ``severity`` (e.g. the deployment a per-deployment rule watches)."""

    alert: str
    expr: str
    for_s: int
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": duration(self.for_s),
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _rate(metric: str, by: str, spec: Spec, selector: str = SERVER) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{window(spec)}]))"


def _mean(numerator: str, denominator: str) -> str:
    """A per-request mean of two rates; no value (not 0) while a model is idle."""
    return f"{numerator} / {denominator}"


def queue_time_per_pod(spec: Spec) -> str:
    """Average queue time per request of each server pod, over all its models; 0 while idle, so an
    autoscaler can scale an idle deployment down (a missing value would hold it)."""
    queue = _rate("nv_inference_queue_duration_us", "namespace, pod", spec)
    success = _rate("nv_inference_request_success", "namespace, pod", spec)
    return f"({queue} / ({success} > 0)) or ({success} * 0)"


def recording_rules(spec: Spec) -> list[RecordingRule]:
    n = lambda template: name(template, spec)  # noqa: E731 - a short alias keeps the table below readable
    rates = {metric: f"model:{metric}:rate{window(spec)}" for metric in _RATES}
    all_requests = f"({n(SUCCESS)} + {n(FAILURE)})"
    by_reason = n(FAILURE_BY_REASON)
    return [
        RecordingRule(record=n(SUCCESS), expr=_rate("nv_inference_request_success", "model", spec)),
        RecordingRule(record=n(FAILURE), expr=_rate("nv_inference_request_failure", "model", spec)),
        RecordingRule(record=by_reason, expr=_rate("nv_inference_request_failure", "model, reason", spec)),
        *(RecordingRule(record=rates[metric], expr=_rate(metric, "model", spec)) for metric in _RATES),
        RecordingRule(
            record=n(FAILURE_RATIO), expr=f'sum by (model) ({by_reason}{{reason!="REJECTED"}}) / {all_requests}'
        ),
        RecordingRule(record=n(REFUSAL_RATIO), expr=f'sum by (model) ({by_reason}{{reason="REJECTED"}}) / {all_requests}'),
        RecordingRule(record=n(BATCH_SIZE), expr=_mean(rates["nv_inference_count"], rates["nv_inference_exec_count"])),
        RecordingRule(record=n(QUEUE_MEAN), expr=_mean(rates["nv_inference_queue_duration_us"], n(SUCCESS))),
        RecordingRule(record=n(COMPUTE_MEAN), expr=_mean(rates["nv_inference_compute_infer_duration_us"], n(SUCCESS))),
        RecordingRule(record=n(REQUEST_MEAN), expr=_mean(rates["nv_inference_request_duration_us"], n(SUCCESS))),
        RecordingRule(record=n(QUEUE_PER_POD), expr=queue_time_per_pod(spec)),
    ]


def alerting_rules(spec: Spec, kube_deployment: str | None = None) -> list[AlertRule]:
    """The alerts; with ``kube_deployment`` (Kubernetes), also one on its unavailable replicas
    (kube-state-metrics' series, present in every kube-prometheus installation)."""
    m, budget = spec.monitoring, spec.server.queue_time_target_us
    rules = [
        AlertRule(
            alert="TritonServerDown",
            expr=f"up{{{SERVER}}} == 0",
            for_s=m.server_down_for_s,
            severity="critical",
            summary="Triton server {{ $labels.instance }} does not answer scrapes",
            description="Prometheus could not scrape the metrics port: the server is down, restarting or unreachable.",
        ),
        AlertRule(
            alert="TritonModelFailureRate",
            expr=f"{name(FAILURE_RATIO, spec)} > {m.failure_ratio_alert:g}",
            for_s=m.alert_for_s,
            severity="warning",
            summary="{{ $labels.model }}: {{ $value | humanizePercentage }} of requests fail",
            description=f"More than {m.failure_ratio_alert:.0%} of the model's requests failed (refusals for a full queue "
            "count at an ensemble; queue timeouts, REJECTED, do not).",
        ),
        AlertRule(
            alert="TritonQueueTimeOverBudget",
            expr=f"{name(QUEUE_MEAN, spec)} > {budget}",
            for_s=m.alert_for_s,
            severity="warning",
            summary="{{ $labels.model }}: requests wait {{ $value | humanize }} us in the queue",
            description=f"Average queue time per request above the spec's budget of {budget} us (queue_time_target_us): "
            "the servers are saturated; the autoscaler should be adding replicas.",
        ),
        AlertRule(
            alert="TritonGPUMemoryHigh",
            expr=f"nv_gpu_memory_used_bytes{{{SERVER}}} / nv_gpu_memory_total_bytes{{{SERVER}}} > {m.gpu_memory_ratio_alert:g}",
            for_s=m.alert_for_s,
            severity="warning",
            summary="GPU {{ $labels.gpu_uuid }} on {{ $labels.instance }}: {{ $value | humanizePercentage }} of memory used",
            description=f"More than {m.gpu_memory_ratio_alert:.0%} of the GPU's memory is in use: another model instance or "
            "a larger batch may fail to allocate.",
        ),
    ]
    for model in spec.models:  # a model's series exist only while it is loaded
        rules.append(
            AlertRule(
                alert="TritonDeploymentNotReady",
                expr=f'up{{{SERVER}}} == 1 unless on (instance) nv_inference_request_success{{{SERVER}, model="{model.name}"}}',
                for_s=m.alert_for_s,
                severity="critical",
                summary=f"{model.name} is not loaded on {{{{ $labels.instance }}}}",
                description="The server answers scrapes but reports no series for the deployment: it failed to load or "
                "was unloaded.",
                labels={"deployment": model.name},
            )
        )
    if kube_deployment:
        selector = f'deployment="{kube_deployment}"'
        rules.append(
            AlertRule(
                alert="TritonReplicasUnavailable",
                expr=f"kube_deployment_status_replicas_available{{{selector}}} < kube_deployment_spec_replicas{{{selector}}}",
                for_s=m.alert_for_s,
                severity="warning",
                summary=f"{kube_deployment}: {{{{ $value }}}} replicas available, fewer than desired",
                description="Pods of the Triton Deployment are not ready (loading engines, crash-looping or unschedulable).",
            )
        )
    return rules


def rule_groups(spec: Spec, kube_deployment: str | None = None) -> dict[str, Any]:
    """A Prometheus rule file (``groups:``); also the ``spec`` of a PrometheusRule."""
    return {
        "groups": [
            {"name": "tritonize.recording", "rules": [r.to_dict() for r in recording_rules(spec)]},
            {"name": "tritonize.alerts", "rules": [r.to_dict() for r in alerting_rules(spec, kube_deployment)]},
        ]
    }


def prometheus_config(spec: Spec, triton_targets: list[str], cadvisor_targets: list[str], rule_file: str) -> dict[str, Any]:
    """A Prometheus configuration with static targets (compose, tests)."""
    interval = duration(spec.monitoring.scrape_interval_s)
    jobs = [{"job_name": JOB, "static_configs": [{"targets": list(triton_targets)}]}]
    if cadvisor_targets:
        jobs.append({"job_name": CADVISOR_JOB, "static_configs": [{"targets": list(cadvisor_targets)}]})
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rule_file],
        "scrape_configs": jobs,
    }


# -- Grafana ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Query:
    expr: str
    legend: str = "{{model}}"


@dataclass(frozen=True, kw_only=True)
class Panel:
    """One question an operator asks, answered by a time series. ``needs`` names what must be
    scraped besides Triton's own metrics for the panel to have data (a GPU, cAdvisor)."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    needs: str | None = None
    threshold: float | None = None  # a red line (the spec's budget or alert threshold)


def panels(spec: Spec) -> list[Panel]:
    n = lambda template: name(template, spec)  # noqa: E731
    m = spec.monitoring
    gpu = f"{{{SERVER}}}"
    return [
        Panel(title="Requests per second", description="Successful requests per model (throughput).",
              queries=(Query(expr=n(SUCCESS)),), unit="reqps"),
        Panel(title="Failed requests", description="Share of a model's requests that failed (REJECTED apart).",
              queries=(Query(expr=n(FAILURE_RATIO)),), unit="percentunit", threshold=m.failure_ratio_alert),
        Panel(title="Refused requests (queue timeout)", description="Share of a model's requests Triton REJECTED: "
              "they waited longer than the queue's timeout.", queries=(Query(expr=n(REFUSAL_RATIO)),), unit="percentunit"),
        Panel(title="Queue time per request", description="Average time a request waited in the model's queue.",
              queries=(Query(expr=n(QUEUE_MEAN)),), unit="µs", threshold=float(spec.server.queue_time_target_us)),
        Panel(title="Compute time per request", description="Average time the backend spent executing a request.",
              queries=(Query(expr=n(COMPUTE_MEAN)),), unit="µs"),
        Panel(title="Request time", description="Average end-to-end time of a request inside Triton.",
              queries=(Query(expr=n(REQUEST_MEAN)),), unit="µs"),
        Panel(title="Batch size", description="Inferences per execution: how full the dynamic batcher's batches are.",
              queries=(Query(expr=n(BATCH_SIZE)),), unit="none"),
        Panel(title="Requests waiting", description="Requests received but not yet executing, per model.",
              queries=(Query(expr=f"sum by (model) (nv_inference_pending_request_count{{{SERVER}}})"),), unit="none"),
        Panel(title="Queue time per server (autoscaler metric)", description="What the autoscaler compares with "
              "queue_time_target_us: queue time per request over all models of a server.",
              queries=(Query(expr=n(QUEUE_PER_POD), legend="{{namespace}}/{{pod}}"),), unit="µs",
              threshold=float(spec.server.queue_time_target_us)),
        Panel(title="GPU utilisation", description="Share of time a GPU was busy.",
              queries=(Query(expr=f"nv_gpu_utilization{gpu}", legend="{{instance}} {{gpu_uuid}}"),),
              unit="percentunit", needs="gpu"),
        Panel(title="GPU memory used", description="Memory in use on each GPU, and its total.",
              queries=(Query(expr=f"nv_gpu_memory_used_bytes{gpu}", legend="used {{instance}} {{gpu_uuid}}"),
                       Query(expr=f"nv_gpu_memory_total_bytes{gpu}", legend="total {{instance}} {{gpu_uuid}}")),
              unit="bytes", needs="gpu", threshold=None),
        Panel(title="Server process memory", description="Working set of the Triton container (cAdvisor): "
              "tritonserver and its Python-backend stubs.",
              queries=(Query(expr=f'sum by (pod) (container_memory_working_set_bytes{{container="{TRITON_CONTAINER}"}})',
                             legend="{{pod}}"),
                       Query(expr="sum by (name) (container_memory_working_set_bytes"
                                  f'{{container_label_com_docker_compose_service="{TRITON_CONTAINER}"}})', legend="{{name}}")),
              unit="bytes", needs="cadvisor"),
        Panel(title="Host memory used", description="Memory in use on the server's host (Triton's CPU metric: "
              "the whole host, not the process).",
              queries=(Query(expr=f"nv_cpu_memory_used_bytes{{{SERVER}}}", legend="{{instance}}"),), unit="bytes"),
        Panel(title="Servers up", description="1 while Prometheus can scrape a server.",
              queries=(Query(expr=f"up{{{SERVER}}}", legend="{{instance}}"),), unit="none"),
    ]  # fmt: skip


def _panel_json(panel: Panel, index: int) -> dict[str, Any]:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.threshold is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": panel.threshold}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": datasource, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "none"}},
    }


def dashboard(spec: Spec) -> dict[str, Any]:
    """The Grafana dashboard (JSON model): one time-series panel per :func:`panels` entry; the data
    source is a variable, so the same JSON works with any Prometheus data source's uid."""
    return {
        "uid": DASHBOARD_UID,
        "title": "tritonize: Triton servers",
        "description": f"Generated by tritonize from {spec.source}; do not edit (regenerate).",
        "tags": ["tritonize", "triton"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": GRAFANA_SCHEMA_VERSION,
        "refresh": duration(max(spec.monitoring.scrape_interval_s, 5)),
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                 "current": {}, "hide": 0, "refresh": 1}  # fmt: skip
            ]
        },
        "annotations": {"list": []},
        "panels": [_panel_json(panel, i) for i, panel in enumerate(panels(spec))],
    }


def dashboard_json(spec: Spec) -> str:
    return json.dumps(dashboard(spec), indent=2, ensure_ascii=False) + "\n"


def grafana_datasource(url: str) -> dict[str, Any]:
    """Grafana provisioning: the Prometheus data source (fixed uid, default)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {"name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "access": "proxy", "url": url, "isDefault": True}
        ],
    }


def grafana_dashboards(path: str) -> dict[str, Any]:
    """Grafana provisioning: load the dashboards in ``path`` (read-only in the UI)."""
    return {
        "apiVersion": 1,
        "providers": [
            {"name": "tritonize", "type": "file", "disableDeletion": True, "allowUiUpdates": False, "options": {"path": path}}
        ],
    }


# -- files of the compose monitoring profile ----------------------------------------------------
COMPOSE_DIR = "deploy/monitoring"  # beside docker-compose.yml, mounted read-only by its services
PROMETHEUS_DIR = "/etc/prometheus"  # inside the Prometheus container
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards"


def _header(spec: Spec, what: str) -> str:
    return (
        f"GENERATED by `tritonize deploy monitoring` from {spec.source}: edit that and regenerate; tests fail on drift.\n{what}"
    )


def compose_files(spec: Spec, triton_host: str = "triton", cadvisor_host: str = "cadvisor") -> dict[str, str]:
    """Relative path (under :data:`COMPOSE_DIR`) -> text of every file the monitoring profile mounts."""
    from tritonize.deploy import yaml_io

    config = prometheus_config(
        spec,
        [f"{triton_host}:{spec.server.metrics_port}"],
        [f"{cadvisor_host}:{CADVISOR_PORT}"],
        f"{PROMETHEUS_DIR}/{RULES_FILE}",
    )
    return {
        "prometheus/prometheus.yml": yaml_io.dump(config, _header(spec, "Prometheus configuration of the compose profile 'monitoring'.")),
        f"prometheus/{RULES_FILE}": yaml_io.dump(rule_groups(spec), _header(spec, "Recording and alerting rules.")),
        "grafana/provisioning/datasources/prometheus.yml": yaml_io.dump(
            grafana_datasource(f"http://prometheus:{PROMETHEUS_PORT}"), _header(spec, "Grafana data source.")
        ),
        "grafana/provisioning/dashboards/tritonize.yml": yaml_io.dump(
            grafana_dashboards(GRAFANA_DASHBOARDS), _header(spec, "Grafana dashboard provider.")
        ),
        f"grafana/dashboards/{DASHBOARD_FILE}": dashboard_json(spec),
    }
