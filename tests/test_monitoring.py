"""Monitoring generated from the spec: drift, the real promtool (config, rules, a unit test for every
alert), the Grafana dashboard through the Grafana foundation SDK's types, the Kubernetes resources, and a
real Prometheus scraping a real embedded server under load (every panel and recording rule has data)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tritonize.deploy import kubernetes, kubernetes_monitoring, monitoring
from tritonize.errors import SpecError
from tritonize.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / monitoring.COMPOSE_DIR


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: scripts/setup.sh installs Debian's prometheus package as root")
        pytest.skip(f"{name} is not installed (Debian package prometheus; scripts/setup.sh installs it as root)")
    return found


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# -- generated files ---------------------------------------------------------------------------
def test_monitoring_checked_in_files_equal_generation_when_spec_unchanged():
    fresh = monitoring.compose_files(load_spec())
    on_disk = {p.relative_to(COMPOSE_DIR).as_posix() for p in COMPOSE_DIR.rglob("*") if p.is_file()}
    assert on_disk == set(fresh), "run scripts/generate-deploy.sh"
    drifted = [name for name, text in fresh.items() if (COMPOSE_DIR / name).read_text(encoding="utf-8") != text]
    assert drifted == [], f"{drifted} drifted from their generator: run `tritonize deploy monitoring`"


def test_cli_deploy_monitoring_writes_what_compose_mounts(tmp_path):
    from tritonize.cli import main as cli_main

    assert cli_main(["deploy", "monitoring", "--out", str(tmp_path)]) == 0
    written = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == monitoring.compose_files(load_spec())


def test_monitoring_follows_the_spec_when_thresholds_and_scrape_interval_change():
    text = (ROOT / "tritonize" / "models.toml").read_text(encoding="utf-8")
    spec = parse_spec(
        text + "\n[monitoring]\nscrape_interval_s = 30\nfailure_ratio_alert = 0.05\ngpu_memory_ratio_alert = 0.8\n", "x.toml"
    )
    alerts = {rule.alert: rule for rule in monitoring.alerting_rules(spec)}
    assert alerts["TritonModelFailureRate"].expr.endswith("> 0.05")
    assert alerts["TritonGPUMemoryHigh"].expr.endswith("> 0.8")
    assert alerts["TritonQueueTimeOverBudget"].expr.endswith(f"> {spec.server.queue_time_target_us}")
    records = [rule.record for rule in monitoring.recording_rules(spec)]
    assert all(record.endswith(("rate2m", "mean2m")) for record in records)  # four 30 s scrapes
    assert all("[2m]" in rule.expr for rule in monitoring.recording_rules(spec) if "rate(" in rule.expr)
    adapter = kubernetes.adapter_values(spec)["rules"]["custom"][0]
    assert adapter["seriesQuery"].startswith("namespace_pod:nv_inference_queue_duration_us:mean2m{")


@pytest.mark.parametrize(
    ("table", "field"),
    [("scrape_interval_s = 0", "monitoring.scrape_interval_s"), ("failure_ratio_alert = 1", "monitoring.failure_ratio_alert"),
     ("alert_for = 3", "monitoring.alert_for"), ("alert_for_s = 1.5", "monitoring.alert_for_s")],
)  # fmt: skip
def test_monitoring_table_rejects_bad_values_naming_the_field(table, field):
    text = (ROOT / "tritonize" / "models.toml").read_text(encoding="utf-8")
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec(f"{text}\n[monitoring]\n{table}\n", "x.toml")


def test_autoscaler_metric_reads_the_recording_rule_when_generated():
    """One definition: the adapter selects the recorded series, it computes nothing itself."""
    spec = load_spec()
    rule = kubernetes.adapter_values(spec)["rules"]["custom"][0]
    recorded = monitoring.name(monitoring.QUEUE_PER_POD, spec)
    assert rule["name"] == {"matches": f"^{recorded}$", "as": kubernetes.QUEUE_METRIC}
    assert "rate(" not in rule["metricsQuery"] and "<<.Series>>" in rule["metricsQuery"]
    assert recorded in [r.record for r in monitoring.recording_rules(spec)]


# -- promtool ----------------------------------------------------------------------------------
def test_promtool_accepts_the_checked_in_config_and_rules():
    config = COMPOSE_DIR / "prometheus" / "prometheus.yml"
    rules = COMPOSE_DIR / "prometheus" / monitoring.RULES_FILE
    checked = _promtool("check", "config", "--syntax-only", str(config))  # the rule path is the container's
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = _promtool("check", "rules", str(rules))
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr


def test_promtool_accepts_a_full_config_and_the_kubernetes_rules(tmp_path):
    spec = load_spec()
    rules = tmp_path / "kubernetes.rules.yml"
    rules.write_text(yaml.safe_dump(kubernetes_monitoring.prometheus_rule(spec)["spec"]))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(monitoring.prometheus_config(spec, ["127.0.0.1:8002"], [], str(rules))))
    for args in (("check", "config", str(config)), ("check", "rules", str(rules))):
        checked = _promtool(*args)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_rejects_a_broken_rule_so_the_checks_are_not_vacuous(tmp_path):
    groups = monitoring.rule_groups(load_spec())
    groups["groups"][0]["rules"][0]["expr"] = "sum by (model (rate(x[1m]))"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(groups))
    assert _promtool("check", "rules", str(broken)).returncode != 0


INSTANCE = "a:8002"
MODEL = 'model="m", version="1"'


def _counter(metric: str, labels: str, step: int) -> dict:
    return {"series": f"{metric}{{job=\"triton\", instance=\"{INSTANCE}\", {labels}}}", "values": f"0+{step}x40"}


def _failures(backend: int, rejected: int) -> list[dict]:
    steps = {"BACKEND": backend, "REJECTED": rejected, "OTHER": 0, "CANCELED": 0}
    return [_counter("nv_inference_request_failure", f'{MODEL}, reason="{reason}"', s) for reason, s in steps.items()]


def _alert_cases(spec) -> list[dict]:
    """(alert, deployment label) -> input series, the labels and rendered summary it must fire with,
    and series under which it must stay quiet. Every generated alert needs one (a test checks it)."""
    up = {"series": f'up{{job="triton", instance="{INSTANCE}"}}', "values": "1x40"}
    ok = [_counter("nv_inference_request_success", MODEL, 100)]
    server = {"job": "triton", "instance": INSTANCE}
    cases = [
        {"alert": "TritonServerDown", "fire": [{**up, "values": "0x40"}], "quiet": [up],
         "labels": server, "summary": f"Triton server {INSTANCE} does not answer scrapes"},
        {"alert": "TritonModelFailureRate", "fire": [*ok, *_failures(backend=100, rejected=0)],
         "quiet": [*ok, *_failures(backend=0, rejected=100)],  # refusals (REJECTED) are not failures
         "labels": {"model": "m"}, "summary": "m: 50% of requests fail"},
        {"alert": "TritonQueueTimeOverBudget", "fire": [*ok, _counter("nv_inference_queue_duration_us", MODEL, 100 * 30000)],
         "quiet": [*ok, _counter("nv_inference_queue_duration_us", MODEL, 100 * 10000)],
         "labels": {"model": "m"}, "summary": "m: requests wait 30k us in the queue"},
        {"alert": "TritonGPUMemoryHigh",
         "fire": [{"series": f'nv_gpu_memory_used_bytes{{job="triton", instance="{INSTANCE}", gpu_uuid="GPU-1"}}', "values": "95x40"},
                  {"series": f'nv_gpu_memory_total_bytes{{job="triton", instance="{INSTANCE}", gpu_uuid="GPU-1"}}', "values": "100x40"}],
         "quiet": [{"series": f'nv_gpu_memory_used_bytes{{job="triton", instance="{INSTANCE}", gpu_uuid="GPU-1"}}', "values": "50x40"},
                   {"series": f'nv_gpu_memory_total_bytes{{job="triton", instance="{INSTANCE}", gpu_uuid="GPU-1"}}', "values": "100x40"}],
         "labels": {**server, "gpu_uuid": "GPU-1"}, "summary": f"GPU GPU-1 on {INSTANCE}: 95% of memory used"},
    ]  # fmt: skip
    loaded = {m.name: _counter("nv_inference_request_success", f'model="{m.name}", version="1"', 1) for m in spec.models}
    for model in spec.models:  # one rule per deployment, all named TritonDeploymentNotReady: the others stay loaded
        others = [series for name, series in loaded.items() if name != model.name]
        cases.append(
            {"alert": "TritonDeploymentNotReady", "deployment": model.name, "fire": [up, *ok, *others],
             "quiet": [up, *loaded.values()], "labels": {**server, "deployment": model.name},
             "summary": f"{model.name} is not loaded on {INSTANCE}"}
        )  # fmt: skip
    deployment = f'deployment="{kubernetes.SERVER}", namespace="ns"'
    cases.append(
        {"alert": "TritonReplicasUnavailable",
         "fire": [{"series": f"kube_deployment_status_replicas_available{{{deployment}}}", "values": "1x40"},
                  {"series": f"kube_deployment_spec_replicas{{{deployment}}}", "values": "2x40"}],
         "quiet": [{"series": f"kube_deployment_status_replicas_available{{{deployment}}}", "values": "2x40"},
                   {"series": f"kube_deployment_spec_replicas{{{deployment}}}", "values": "2x40"}],
         "labels": {"deployment": kubernetes.SERVER, "namespace": "ns"},
         "summary": f"{kubernetes.SERVER}: 1 replicas available, fewer than desired"}
    )  # fmt: skip
    return cases


def test_promtool_unit_tests_fire_and_stay_quiet_for_every_alert(tmp_path):
    spec = load_spec()
    rules = {(r.alert, r.labels.get("deployment")): r for r in monitoring.alerting_rules(spec, kube_deployment=kubernetes.SERVER)}
    cases = _alert_cases(spec)
    assert {(c["alert"], c.get("deployment")) for c in cases} == set(rules), "every alert needs a fire/quiet case"
    eval_time = f"{max(r.for_s for r in rules.values()) + 120}s"  # past every `for:`, with a full rate window
    tests = []
    for case in cases:
        rule = rules[(case["alert"], case.get("deployment"))]
        expected = {
            "exp_labels": {"severity": rule.severity, **rule.labels, **case["labels"]},
            "exp_annotations": {"summary": case["summary"], "description": rule.description},
        }
        for kind, series, alerts in (("fire", case["fire"], [expected]), ("quiet", case["quiet"], [])):
            tests.append({
                "name": f"{rule.alert} {case.get('deployment') or ''} {kind}",
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [{"eval_time": eval_time, "alertname": rule.alert, "exp_alerts": alerts}],
            })  # fmt: skip
    # Recording rules: the batch size, per-request means, the ratios and the autoscaler's idle zero.
    n = lambda template: monitoring.name(template, spec)  # noqa: E731
    tests.append({
        "name": "recorded means and ratios",
        "interval": "15s",
        "input_series": [
            _counter("nv_inference_request_success", MODEL, 100),
            _counter("nv_inference_count", MODEL, 400),
            _counter("nv_inference_exec_count", MODEL, 100),
            _counter("nv_inference_queue_duration_us", MODEL, 100 * 250),
            _counter("nv_inference_compute_infer_duration_us", MODEL, 100 * 4000),
            *_failures(backend=0, rejected=100),
            {"series": 'nv_inference_request_success{job="triton", namespace="ns", pod="idle", model="m"}', "values": "5x40"},
            {"series": 'nv_inference_queue_duration_us{job="triton", namespace="ns", pod="idle", model="m"}', "values": "7x40"},
        ],
        "promql_expr_test": [
            {"expr": n(monitoring.BATCH_SIZE), "eval_time": "5m", "exp_samples": [{"labels": f"{n(monitoring.BATCH_SIZE)}{{model=\"m\"}}", "value": 4}]},
            {"expr": n(monitoring.QUEUE_MEAN), "eval_time": "5m", "exp_samples": [{"labels": f"{n(monitoring.QUEUE_MEAN)}{{model=\"m\"}}", "value": 250}]},
            {"expr": n(monitoring.COMPUTE_MEAN), "eval_time": "5m", "exp_samples": [{"labels": f"{n(monitoring.COMPUTE_MEAN)}{{model=\"m\"}}", "value": 4000}]},
            {"expr": n(monitoring.REFUSAL_RATIO), "eval_time": "5m", "exp_samples": [{"labels": f"{n(monitoring.REFUSAL_RATIO)}{{model=\"m\"}}", "value": 0.5}]},
            {"expr": n(monitoring.FAILURE_RATIO), "eval_time": "5m", "exp_samples": [{"labels": f"{n(monitoring.FAILURE_RATIO)}{{model=\"m\"}}", "value": 0}]},
            {"expr": f'{n(monitoring.QUEUE_PER_POD)}{{pod="idle"}}', "eval_time": "5m",
             "exp_samples": [{"labels": f'{n(monitoring.QUEUE_PER_POD)}{{namespace="ns", pod="idle"}}', "value": 0}]},
        ],
    })  # fmt: skip
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump(kubernetes_monitoring.rules(spec)))
    test_file = tmp_path / "tests.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [rule_file.name], "evaluation_interval": "15s", "tests": tests}))
    result = _promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # not vacuous: the same tests fail when an alert's threshold is wrong
    groups = kubernetes_monitoring.rules(spec)
    alert = next(r for r in groups["groups"][1]["rules"] if r["alert"] == "TritonModelFailureRate")
    alert["expr"] = alert["expr"].replace(f"> {spec.monitoring.failure_ratio_alert:g}", "> 0.9")
    rule_file.write_text(yaml.safe_dump(groups))
    assert _promtool("test", "rules", test_file.name, cwd=tmp_path).returncode != 0


# -- Grafana -----------------------------------------------------------------------------------
def _lost(ours: object, theirs: object, path: str = "") -> list[str]:
    """Paths of ``ours`` that ``theirs`` lacks or holds with another value (extra defaults in ``theirs`` are fine)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [path]
        return [p for k, v in ours.items() for p in (_lost(v, theirs[k], f"{path}/{k}") if k in theirs else [f"{path}/{k}"])]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [path]
        return [p for i, (a, b) in enumerate(zip(ours, theirs)) for p in _lost(a, b, f"{path}[{i}]")]
    return [] if ours == theirs and type(ours) is type(theirs) else [f"{path}: {ours!r} != {theirs!r}"]


def _mistyped(obj: object, path: str = "") -> list[str]:
    """Attributes of the SDK's model objects whose value is not of the annotated type (primitives,
    Optional, lists; other annotations are left to the round trip)."""
    import typing

    if not hasattr(obj, "__dict__") or not type(obj).__module__.startswith("grafana_foundation_sdk"):
        return []
    try:
        hints = typing.get_type_hints(type(obj))
    except (NameError, TypeError):
        return []
    bad = []
    for attr, value in vars(obj).items():
        hint = hints.get(attr)
        args = typing.get_args(hint)
        if typing.get_origin(hint) is typing.Union and type(None) in args and len(args) == 2:
            hint = args[0] if value is not None else type(None)
        items = value if isinstance(value, list) else [value]
        if hint in (int, str, bool) and type(value) is not hint:
            bad.append(f"{path}.{attr}: {value!r} is not {hint.__name__}")
        if hint is float and not isinstance(value, (int, float)):
            bad.append(f"{path}.{attr}: {value!r} is not a number")
        for i, item in enumerate(items):
            bad += _mistyped(item, f"{path}.{attr}" + (f"[{i}]" if isinstance(value, list) else ""))
    return bad


def _dashboard_through_sdk(data: dict) -> dict:
    """The dashboard parsed into the Grafana foundation SDK's typed models (Grafana's schema, with the
    timeseries panel and Prometheus query types registered) and serialised back."""
    sdk = pytest.importorskip("grafana_foundation_sdk", reason="pip install grafana-foundation-sdk (test extra)")
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard
    from grafana_foundation_sdk.models.prometheus import Dataquery
    from grafana_foundation_sdk.models.timeseries import Options

    del sdk
    register_default_plugins()
    model = Dashboard.from_json(data)
    for panel in model.panels:
        assert isinstance(panel.options, Options) and all(isinstance(t, Dataquery) for t in panel.targets)
    out = json.loads(json.dumps(model.to_json(), default=lambda o: o.to_json()))
    out["__mistyped__"] = _mistyped(model)
    return out


def test_dashboard_survives_grafanas_typed_models_unchanged_when_generated():
    """Every key the generator writes is one Grafana's schema types know (an unknown key would be
    dropped by the round trip), and every primitive value has the schema's type."""
    data = monitoring.dashboard(load_spec())
    typed = _dashboard_through_sdk(copy.deepcopy(data))
    assert typed.pop("__mistyped__") == [] and _lost(data, typed) == []
    broken = copy.deepcopy(data)
    broken["panels"][0]["fieldConfig"]["defaults"]["unitt"] = "s"  # a typo Grafana would silently ignore
    broken["panels"][1]["gridPos"]["w"] = "12"  # a string where the schema has a number
    typed = _dashboard_through_sdk(copy.deepcopy(broken))
    assert typed.pop("__mistyped__") == [".panels[1].grid_pos.w: '12' is not int"]
    assert _lost(broken, typed) == ["/panels[0]/fieldConfig/defaults/unitt"]


def test_dashboard_panels_answer_from_rules_or_triton_metrics_and_do_not_overlap():
    spec = load_spec()
    data = monitoring.dashboard(spec)
    records = {r.record for r in monitoring.recording_rules(spec)}
    assert (COMPOSE_DIR / "grafana" / "dashboards" / monitoring.DASHBOARD_FILE).read_text() == monitoring.dashboard_json(spec)
    cells = set()
    for panel in data["panels"]:
        x, y, w, h = (panel["gridPos"][k] for k in ("x", "y", "w", "h"))
        mine = {(i, j) for i in range(x, x + w) for j in range(y, y + h)}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            metric = target["expr"].split("{")[0].split("(")[-1].strip()
            assert metric in records or metric.startswith(("nv_", "up", "container_")), target["expr"]
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])
    assert [v["name"] for v in data["templating"]["list"]] == ["datasource"]


# -- Kubernetes --------------------------------------------------------------------------------
def test_kubernetes_monitoring_resources_validate_and_select_the_triton_service():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (test extra)")
    spec = load_spec()
    resources = kubernetes_monitoring.resources(spec)
    service = kubernetes.triton_service(spec.server)
    for name in ("rules-configmap.yaml", "grafana-dashboard.yaml"):  # core kinds: the Kubernetes schema, strict
        kubernetes_validate.validate(resources[name], kubernetes_validate.utils.latest_version(), strict=True)
    dashboard = resources["grafana-dashboard.yaml"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"][monitoring.DASHBOARD_FILE]) == monitoring.dashboard(spec)
    assert all(r["metadata"]["namespace"] == spec.kubernetes.monitoring_namespace for r in resources.values())
    # CRDs: not in kubernetes-validate; check what the Operator reads against what the Service offers
    monitor = resources["servicemonitor.yaml"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["endpoints"][0]["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": monitoring.JOB}]
    rule = resources["prometheusrule.yaml"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["spec"] == kubernetes_monitoring.rules(spec)
    assert yaml.safe_load(resources["rules-configmap.yaml"]["data"][monitoring.RULES_FILE]) == rule["spec"]


def test_kubernetes_cli_writes_the_monitoring_resources(tmp_path):
    from tritonize.cli import main as cli_main

    assert cli_main(["deploy", "kubernetes", "--target", "cpu", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / kubernetes_monitoring.RESOURCES_DIR).iterdir())
    assert written == sorted(kubernetes_monitoring.resources(load_spec()))


# -- a real Prometheus, a real server ----------------------------------------------------------
def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def _wait_for(base: str, expr: str, timeout_s: float = 90.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    result: list[dict] = []
    while time.monotonic() < deadline:
        try:
            result = _query(base, expr)
        except OSError:
            result = []
        if result:
            return result
        time.sleep(1.0)
    return result


@pytest.mark.triton
@pytest.mark.slow
def test_prometheus_scrapes_a_loaded_server_and_every_panel_and_rule_has_data(classifier_repository, tritonize_cache, tmp_path):
    """Prometheus 2.42 (Debian) scrapes a throwaway embedded server every second while clients send
    requests; every recording rule and every panel query returns series through the HTTP API, except
    the panels that need a GPU or cAdvisor (none here). Then the deployment is unloaded and the
    not-ready alert's expression names the server."""
    from dataclasses import replace

    from conftest import loopback_config

    from tritonize.client import TritonizeClient
    from tritonize.server import EmbeddedServer, free_port
    from tritonize.serving.control import RepositoryControl

    prometheus = _tool("prometheus")
    text = (ROOT / "tritonize" / "models.toml").read_text(encoding="utf-8")
    spec = parse_spec(text + "\n[monitoring]\nscrape_interval_s = 1\n", "e2e.toml")  # rates over 4 s
    config = replace(loopback_config(classifier_repository), model_control="explicit")  # so it can be unloaded
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        metrics_target = server.metrics_url.split("//")[-1].split("/")[0]
        rules = tmp_path / "rules.yml"
        rules.write_text(yaml.safe_dump(monitoring.rule_groups(spec)))
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump(monitoring.prometheus_config(spec, [metrics_target], [], str(rules))))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (tmp_path / "prometheus.log").open("w")
        process = subprocess.Popen(
            [prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stop = threading.Event()

        def load() -> None:
            client = TritonizeClient(server.http_url, protocol="http")
            while not stop.is_set():
                client.classify(["the soak went fine", "queues grew and I was scared"], model="distilbert_emotion")

        senders = [threading.Thread(target=load, daemon=True) for _ in range(2)]
        try:
            for sender in senders:
                sender.start()
            assert _wait_for(base, f'up{{job="{monitoring.JOB}"}} == 1'), "Prometheus never scraped the server"
            missing = []
            for rule in monitoring.recording_rules(spec):
                if not _wait_for(base, rule.record, timeout_s=60):
                    missing.append(rule.record)
            skipped = []
            for panel in monitoring.panels(spec):
                if panel.needs:  # no GPU, no containers here: these have no series to return
                    skipped.append(panel.title)
                    continue
                for query in panel.queries:
                    if not _wait_for(base, query.expr, timeout_s=30):
                        missing.append(f"{panel.title}: {query.expr}")
            assert missing == [], f"no data for {missing}"
            assert skipped == ["GPU utilisation", "GPU memory used", "Server process memory"]
            busy = _query(base, f'{monitoring.name(monitoring.SUCCESS, spec)}{{model="distilbert_emotion"}} > 0')
            assert busy, "the load never showed up as throughput"
            not_ready = next(r for r in monitoring.alerting_rules(spec) if r.labels.get("deployment") == "distilbert_emotion")
            assert _query(base, not_ready.expr) == [], "a loaded deployment looked missing"
            stop.set()
            for sender in senders:
                sender.join(timeout=30)
            RepositoryControl(server.http_url, config.admin_key).unload("distilbert_emotion")
            fired = _wait_for(base, not_ready.expr, timeout_s=30)
            assert [r["metric"]["instance"] for r in fired] == [metrics_target]
        finally:
            stop.set()
            process.terminate()
            process.wait(timeout=30)
            log.close()
