"""Load test: parsing of Triton's counters and Locust's output, and short real Locust runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import instance_count

from tritonize.loadtest.metrics import ModelStats, parse_prometheus, parse_statistics, stats_delta
from tritonize.loadtest.payload import TextSampler, endpoint
from tritonize.loadtest.runner import LoadtestConfig, LoadtestError, locust_command, parse_run_time, run_loadtest
from tritonize.loadtest.summary import histogram_percentile

PROMETHEUS = """\
# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 10
nv_inference_request_success{model="m",version="2"} 5
nv_inference_exec_count{model="m_model",version="1"} 4
nv_inference_count{model="m_model",version="1"} 15
nv_cpu_utilization 0.5
"""


def test_parse_prometheus_sums_versions_and_skips_other_metrics_when_scraped() -> None:
    parsed = parse_prometheus(PROMETHEUS)
    assert parsed["nv_inference_request_success"] == {"m": 15.0}
    assert parsed["nv_inference_count"]["m_model"] / parsed["nv_inference_exec_count"]["m_model"] == 3.75
    assert "nv_cpu_utilization" not in parsed


def test_parse_statistics_reads_http_numbers_and_grpc_strings_when_given_either_form() -> None:
    def payload(num):  # HTTP answers numbers; gRPC's JSON form spells uint64 as strings
        stats = {"success": {"count": num(12), "ns": num(1_200_000)}, "queue": {"count": num(12), "ns": num(600_000)}}
        entry = {"name": "m_model", "inference_count": num(12), "execution_count": num(3), "inference_stats": stats}
        return {"model_stats": [entry]}

    http, grpc = payload(int), payload(str)
    for payload in (http, grpc):
        stats = parse_statistics(payload)["m_model"]
        assert (stats.success_count, stats.avg_batch, stats.per_request_ms(stats.queue_ns)) == (12, 4.0, 0.05)


def test_stats_delta_counts_from_zero_when_model_absent_before() -> None:
    before = {"a": ModelStats(name="a", success_count=5, inference_count=5, execution_count=5)}
    after = {
        "a": ModelStats(name="a", success_count=9, inference_count=9, execution_count=6),
        "b": ModelStats(name="b", success_count=2),
    }
    delta = stats_delta(before, after)
    assert (delta["a"].success_count, delta["a"].avg_batch, delta["b"].success_count) == (4, 4.0, 2)


def test_histogram_percentile_matches_locust_rule_when_given_rounded_times() -> None:
    histogram = {10: 49, 20: 46, 100: 4, 500: 1}  # locust.stats.calculate_response_time_percentile
    assert histogram_percentile(histogram, 100, 0.5) == 20
    assert histogram_percentile(histogram, 100, 0.95) == 100
    assert histogram_percentile(histogram, 100, 0.99) == 500


def test_endpoint_derives_grpc_port_from_http_host_when_no_grpc_url() -> None:
    assert endpoint("http://127.0.0.1:8000", "http") == "127.0.0.1:8000"
    assert endpoint("http://127.0.0.1:8000", "grpc") == "127.0.0.1:8001"
    assert endpoint("grpc://127.0.0.1:9001", "grpc") == "127.0.0.1:9001"
    assert endpoint("http://127.0.0.1:8000", "grpc", grpc_url="h:5") == "h:5"


def test_text_sampler_visits_every_text_before_repeating_when_batched() -> None:
    sampler = TextSampler(["a", "b", "c", "d"], batch=2, seed=1)
    assert sorted(sampler.next() + sampler.next()) == ["a", "b", "c", "d"]


def test_loadtest_config_rejects_bad_values_when_constructed(tmp_path: Path) -> None:
    assert parse_run_time("1m30s") == 90 and parse_run_time("20") == 20
    with pytest.raises(LoadtestError, match="duration"):
        parse_run_time("soon")
    with pytest.raises(LoadtestError, match="protocol"):
        LoadtestConfig(out=tmp_path, protocol="smtp")
    with pytest.raises(LoadtestError, match="corpus"):
        LoadtestConfig(out=tmp_path, corpus=tmp_path / "missing.txt")
    corpus = tmp_path / "c.txt"
    corpus.write_text("i am happy;joy\n")
    command = locust_command(LoadtestConfig(out=tmp_path, protocol="http", url="h:1", corpus=corpus))
    assert command[-1] == "TritonHttpUser" and "--headless" in command and "http://h:1" in command
    assert command[command.index("--corpus") + 1] == str(corpus.resolve())


def _run(triton_server, tmp_path: Path, protocol: str, users: int):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    config = LoadtestConfig(
        out=tmp_path / protocol,
        protocol=protocol,
        users=users,
        spawn_rate=users,
        run_time="6s",
        url=url,
        metrics_url=triton_server.metrics_url,
        admin_key=triton_server.admin_key,
        progress=False,
    )
    return run_loadtest(config)


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_loadtest_counts_match_server_statistics_when_run_headless(
    triton_server, tmp_path: Path, protocol: str
) -> None:
    summary = _run(triton_server, tmp_path, protocol, users=8)
    client = summary.client
    assert client.requests > 0 and client.failures == 0 and client.refusals == 0
    # Locust lets in-flight requests finish (--stop-timeout), so both sides counted the same requests.
    assert abs(summary.server_requests - client.requests) <= 8
    for name in ("summary_json", "summary_md", "locust_stats", "history", "plot", "html"):
        assert Path(summary.files[name]).stat().st_size > 0, name
    saved = json.loads(Path(summary.files["summary_json"]).read_text())
    assert saved["client"]["requests"] == client.requests and saved["server_requests"] == summary.server_requests
    assert summary.metrics is not None, f"could not scrape {triton_server.metrics_url}"
    assert summary.metrics["nv_inference_request_success"]["distilbert_emotion"] == summary.server_requests
    if protocol == "grpc":
        step = summary.model_step
        assert step is not None and step.execution_count < step.inference_count  # the batcher merged requests


@pytest.mark.triton
def test_loadtest_fails_fast_naming_url_when_server_is_down(tmp_path: Path) -> None:
    from tritonize.errors import ServerUnavailableError

    config = LoadtestConfig(out=tmp_path, protocol="http", url="127.0.0.1:9", run_time="2s", progress=False)
    with pytest.raises(ServerUnavailableError, match="127.0.0.1:9"):
        run_loadtest(config)


# -- refusals, soak shape, gates, memory sampling ----------------------------------------------
def test_soak_plan_ramps_holds_spikes_recovers_then_stops_when_ticked() -> None:
    from tritonize.loadtest.soak import SoakPlan

    plan = SoakPlan(users=4, ramp_s=2, hold_s=3, spike_users=10, spike_s=1, recover_s=2)
    assert [(p.name, p.start_s, p.end_s, p.users) for p in plan.phases()] == [
        ("ramp", 0, 2, 4), ("hold", 2, 5, 4), ("spike", 5, 6, 10), ("recover", 6, 8, 4),
    ]  # fmt: skip
    assert plan.tick(0.5) == (4, 2.0)  # 4 users over 2 s
    assert plan.tick(5.5)[0] == 10 and plan.tick(7.9)[0] == 4
    assert plan.tick(8.0) is None and plan.total_s == 8
    assert SoakPlan(users=3).peak_users == 12
    assert [p.name for p in SoakPlan(users=1, ramp_s=0, hold_s=1, spike_s=0, recover_s=0).phases()] == ["hold"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"users": 0}, "users"), ({"users": 4, "spike_users": 2}, "spike users"), ({"users": 1, "hold_s": -1}, "hold")],
)
def test_soak_plan_rejects_impossible_phases_when_constructed(kwargs, message) -> None:
    from tritonize.loadtest.soak import SoakPlan, SoakPlanError

    with pytest.raises(SoakPlanError, match=message):
        SoakPlan(**kwargs)


def test_gates_exclude_refusals_from_failure_ratio_when_evaluated() -> None:
    from tritonize.loadtest.gates import GateError, Gates
    from tritonize.loadtest.summary import ClientStats

    stats = ClientStats(
        requests=100, failures=1, refusals=40, requests_per_s=10, avg_ms=5, p50_ms=4, p95_ms=9, p99_ms=12, max_ms=20
    )
    results = {g.gate: g for g in Gates(max_failure_ratio=0.02, max_p99_ms=10, max_refusal_ratio=0.5).evaluate(stats)}
    assert results["failure ratio"].measured == 0.01 and results["failure ratio"].passed
    assert results["refusal ratio"].measured == 0.4 and results["refusal ratio"].passed
    assert not results["p99 ms"].passed and results["requests > 0"].passed
    assert not all(g.passed for g in Gates().evaluate(stats))  # the default allows no failure at all
    idle = ClientStats(requests=0, failures=0, requests_per_s=0, avg_ms=0, p50_ms=0, p95_ms=0, p99_ms=0, max_ms=0)
    assert not all(g.passed for g in Gates(max_failure_ratio=1.0).evaluate(idle))
    with pytest.raises(GateError, match="max_failure_ratio"):
        Gates(max_failure_ratio=1.5)


def test_read_locust_json_counts_refusals_apart_and_keeps_them_out_of_percentiles_when_present(tmp_path: Path) -> None:
    from tritonize.loadtest.payload import request_type
    from tritonize.loadtest.summary import read_locust_json

    def entry(method: str, times: dict[str, int], failures: int) -> dict:
        count = sum(times.values())
        return {
            "name": "m", "method": method, "num_requests": count, "num_failures": failures,
            "response_times": times, "total_response_time": sum(int(t) * c for t, c in times.items()),
            "max_response_time": max(int(t) for t in times), "start_time": 100.0, "last_request_timestamp": 110.0,
        }  # fmt: skip

    entries = [entry(request_type("grpc"), {"50": 98, "200": 2}, failures=2), entry(request_type("grpc", True), {"1": 300}, 300)]
    path = tmp_path / "locust.json"
    path.write_text(json.dumps(entries))
    stats = read_locust_json(path)
    assert (stats.requests, stats.failures, stats.refusals) == (400, 2, 300)
    assert stats.p50_ms == 50 and stats.p99_ms == 200 and stats.requests_per_s == 40


def test_locust_command_loads_soak_shape_instead_of_users_when_soak(tmp_path: Path) -> None:
    from tritonize.loadtest.soak import SoakPlan

    plan = SoakPlan(users=3, ramp_s=1, hold_s=2, spike_users=9, spike_s=1, recover_s=1)
    config = LoadtestConfig(out=tmp_path, protocol="grpc", url="h:1", soak=plan)
    command = locust_command(config)
    files = command[command.index("-f") + 1].split(",")
    assert [Path(f).name for f in files] == ["locustfile.py", "soak_shape.py"]
    assert "--users" not in command and "--run-time" not in command
    assert command[command.index("--soak-spike-users") + 1] == "9" and config.duration_s == 5


def test_default_locustfiles_are_package_data_not_checkout_files(tmp_path: Path) -> None:
    import tritonize

    config = LoadtestConfig(out=tmp_path)
    package = Path(tritonize.__file__).resolve().parent
    for path in (config.locustfile, config.shape_file):
        assert path.is_file() and path.resolve().parent == package / "loadtest" / "locustfiles"


def test_checkout_locustfiles_load_the_packaged_users_and_shape_with_plain_locust() -> None:
    """``locust -f loadtest/locustfile.py,loadtest/soak_shape.py`` (the thin checkout files) still works."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    files = ",".join(str(root / "loadtest" / name) for name in ("locustfile.py", "soak_shape.py"))
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", files, "--list"], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert done.returncode == 0, done.stderr
    assert {"TritonGrpcUser", "TritonHttpUser"} <= set(done.stdout.split())  # both files imported cleanly


def test_mapped_shm_bytes_counts_shared_memory_this_process_maps_when_linux() -> None:
    import os
    from multiprocessing import shared_memory

    from tritonize.loadtest.resources import mapped_shm_bytes, take_sample

    if not Path("/proc/self/maps").exists():
        pytest.skip("needs Linux /proc")
    before = mapped_shm_bytes(os.getpid())
    block = shared_memory.SharedMemory(create=True, size=4 << 20)
    try:
        block.buf[:] = b"x" * (4 << 20)  # touch every page so it is allocated
        assert mapped_shm_bytes(os.getpid()) - before >= 4 << 20
        sample = take_sample(os.getpid(), start=0.0)
        assert sample.server_rss > 0 and sample.server_shm >= 4 << 20 and sample.dev_shm_used >= 4 << 20
    finally:
        block.close()
        block.unlink()


@pytest.mark.triton
@pytest.mark.slow
def test_soak_counts_refusals_apart_and_samples_memory_when_queues_are_tiny(constrained_server, tmp_path: Path) -> None:
    from tritonize.loadtest.gates import Gates
    from tritonize.loadtest.soak import SoakPlan

    plan = SoakPlan(users=2, ramp_s=2, hold_s=3, spike_users=12, spike_s=3, recover_s=2)
    config = LoadtestConfig(
        out=tmp_path / "soak",
        protocol="grpc",
        url=constrained_server.grpc_url,
        metrics_url=constrained_server.metrics_url,
        soak=plan,
        gates=Gates(max_failure_ratio=0.0),
        server_pid=constrained_server.server.process.pid,
        sample_interval_s=0.5,
        progress=False,
        admin_key=constrained_server.admin_key,
    )
    summary = run_loadtest(config)
    client, resources = summary.client, summary.resources
    print(f"soak: {client.requests} sent, {client.refusals} refused, {client.failures} failed, "
          f"p99 {client.p99_ms:.0f} ms; memory: {resources}")
    assert client.requests > client.refusals > 0, "the spike against 2-request queues was never refused"
    assert client.failures == 0 and summary.passed
    # every request the client saw answered, the server counted as a success (in-flight ones finish)
    assert abs(summary.server_requests - (client.requests - client.refusals)) <= plan.peak_users
    assert [p["name"] for p in summary.shape["phases"]] == ["ramp", "hold", "spike", "recover"]
    assert resources["samples"] >= plan.total_s / config.sample_interval_s / 2
    assert resources["server_rss"]["start_mb"] > 0 and resources["stubs_rss"]["peak_mb"] > 0
    from tritonize.repository.triton_config import parse_pbtxt

    configs = [parse_pbtxt(c.read_text()) for c in constrained_server.repository.glob("*/config.pbtxt")]
    stubs = sum(instance_count(c) for c in configs if c.backend == "python")
    assert resources["stubs"] == {"start": stubs, "end": stubs}  # one per Python-backend instance, none died
    saved = json.loads(Path(summary.files["summary_json"]).read_text())
    assert saved["client"]["refusals"] == client.refusals and saved["passed"] is True
    assert "refused (overloaded)" in Path(summary.files["summary_md"]).read_text()
    assert len(Path(summary.files["resources"]).read_text().splitlines()) == resources["samples"] + 1


@pytest.mark.triton
@pytest.mark.slow
def test_loadtest_command_exits_1_naming_gate_when_p99_gate_fails(triton_server, tmp_path: Path, capsys) -> None:
    from tritonize.cli import main

    code = main([
        "loadtest", "--protocol", "http", "--url", triton_server.http_url, "--metrics-url", triton_server.metrics_url,
        "--users", "2", "--run-time", "3s", "--max-p99-ms", "0.001", "--out", str(tmp_path),
        "--admin-key", triton_server.admin_key,
    ])  # fmt: skip
    assert code == 1
    assert "gate failed: p99 ms" in capsys.readouterr().err
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["passed"] is False and saved["client"]["failures"] == 0
    assert saved["resources"]["server_rss"]["start_mb"] > 0  # the server process was found by its port


def test_summarize_reports_growth_after_warmup_apart_when_samples_rise_early() -> None:
    from tritonize.loadtest.resources import MB, ResourceSample, summarize

    def sample(t: float, rss_mb: float) -> ResourceSample:
        return ResourceSample(elapsed_s=t, server_rss=int(rss_mb * MB), stubs_rss=None, stubs=3, server_shm=None, dev_shm_used=None)

    summary = summarize([sample(0, 100), sample(1, 115), sample(5, 116), sample(9, 117)], pid=1, interval_s=1, warmup_s=5)
    assert summary["server_rss"] == {
        "start_mb": 100, "end_mb": 117, "peak_mb": 117, "growth_mb": 17, "growth_after_warmup_mb": 1,
    }  # fmt: skip
    assert summary["stubs_rss"] is None and summary["stubs"] == {"start": 3, "end": 3}
