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


def test_footprint_counts_shared_memory_descriptors_and_threads_of_a_real_process_when_linux() -> None:
    """The one psutil reader the supervisor and the sampler share, on this test process: a 4 MiB
    shared-memory block, 8 pipes and a thread must each show up, and go away when released."""
    import os
    import threading
    from multiprocessing import shared_memory

    from tritonize.loadtest.resources import take_sample
    from tritonize.serving.processes import footprint, mapped_shm_bytes

    if not Path("/proc/self/maps").exists():
        pytest.skip("needs Linux /proc")
    before = footprint(os.getpid())
    block = shared_memory.SharedMemory(create=True, size=4 << 20)
    pipes = [os.pipe() for _ in range(4)]
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        block.buf[:] = b"x" * (4 << 20)  # touch every page so it is allocated
        during = footprint(os.getpid())
        assert mapped_shm_bytes(os.getpid()) - before.server_shm >= 4 << 20
        assert during.server_fds - before.server_fds >= 8 and during.server_threads - before.server_threads >= 1
        assert during.stubs == 0 and during.stubs_rss == 0  # no Python-backend stub names this pid
        sample = take_sample(os.getpid(), start=0.0)
        assert sample.server_pid == os.getpid() and sample.server_rss > 0 and sample.dev_shm_used >= 4 << 20
    finally:
        release.set()
        thread.join()
        for read, write in pipes:
            os.close(read)
            os.close(write)
        block.close()
        block.unlink()
    after = footprint(os.getpid())  # multiprocessing's resource tracker may keep one pipe open
    assert during.server_fds - after.server_fds >= 8 and during.server_threads - after.server_threads >= 1


def test_growth_windows_compare_equal_load_after_warmup_when_planned() -> None:
    from tritonize.loadtest.soak import GrowthWindows, SoakPlan

    long = SoakPlan(users=8, ramp_s=20, hold_s=1800, spike_s=60, recover_s=180)
    # warm-up: ramp + 10 % of the hold; both windows 10 % of the hold, the end one in the recovery
    assert long.growth_windows(5.0) == GrowthWindows(
        reference_start_s=200, reference_end_s=380, end_start_s=1880, end_end_s=2060
    )
    short = SoakPlan(users=2, ramp_s=2, hold_s=3, spike_users=12, spike_s=3, recover_s=2)
    windows = short.growth_windows(0.5)  # windows of at least 3 samples, cut to their phase
    assert (windows.reference_start_s, windows.reference_end_s) == (2.3, 3.8)
    assert (windows.end_start_s, windows.end_end_s) == (8.5, 10.0)
    no_recovery = SoakPlan(users=2, ramp_s=0, hold_s=100, spike_s=10, recover_s=0).growth_windows(1.0)
    assert (no_recovery.end_start_s, no_recovery.end_end_s) == (90, 100)  # the end of the hold, not the spike


def _samples(series: dict[str, list[float]], step: float = 1.0) -> list:
    """ResourceSamples at ``step`` s from t=0 (wall clock 1000 s); memory series in MB."""
    from tritonize.loadtest.resources import COUNTS, MB, MEMORY, ResourceSample

    length = len(next(iter(series.values())))
    rows = []
    for i in range(length):
        values = {k: None for k in (*MEMORY, *COUNTS)}
        values.update({k: int(v[i] * MB) if k in MEMORY else int(v[i]) for k, v in series.items()})
        rows.append(
            ResourceSample(elapsed_s=i * step, time_s=1000 + i * step, server_pid=7, stubs=2, dev_shm_used=None, **values)
        )
    return rows


def test_summarize_measures_growth_between_window_medians_when_a_transient_hits_one_sample() -> None:
    from tritonize.loadtest.resources import summarize
    from tritonize.loadtest.soak import GrowthWindows

    windows = GrowthWindows(reference_start_s=2, reference_end_s=4, end_start_s=7, end_end_s=9)
    samples = _samples({
        "server_rss": [100, 130, 131, 131, 132, 140, 141, 141, 142, 142],  # warm-up jump, then +11 MB
        "server_fds": [60, 61, 61, 90, 61, 61, 61, 61, 62, 62],  # one probe connection in the reference
        "server_threads": [98] * 10,
    })  # fmt: skip
    summary = summarize(samples, pid=7, interval_s=1.0, windows=windows, load_start_s=1000)
    rss = summary["server_rss"]
    assert (rss["start_mb"], rss["end_mb"], rss["peak_mb"]) == (100, 142, 142)
    assert rss["after_warmup"] == {"reference_mb": 131, "end_mb": 142, "growth_mb": 11, "growth_ratio": round(11 / 131, 4)}
    assert summary["server_fds"]["after_warmup"] == {"reference": 61, "end": 62, "growth": 1}  # the 90 is not the median
    assert summary["server_threads"]["after_warmup"]["growth"] == 0
    assert summary["stubs_rss"] is None and summary["server_pids"] == [7]
    shifted = summarize(samples, pid=7, interval_s=1.0, windows=windows, load_start_s=1003)  # windows move with the load
    assert shifted["server_rss"]["after_warmup"]["reference_mb"] == 141 and shifted["server_rss"]["after_warmup"]["end_mb"] is None


def test_soak_gates_fail_on_memory_descriptor_thread_growth_and_restarts_when_evaluated() -> None:
    from tritonize.loadtest.gates import GateError, Gates
    from tritonize.loadtest.resources import summarize
    from tritonize.loadtest.soak import GrowthWindows
    from tritonize.loadtest.summary import ClientStats

    client = ClientStats(requests=10, failures=0, requests_per_s=1, avg_ms=1, p50_ms=1, p95_ms=1, p99_ms=1, max_ms=1)
    windows = GrowthWindows(reference_start_s=0, reference_end_s=2, end_start_s=3, end_end_s=5)

    def verdicts(series: dict[str, list[float]], gates: Gates | None = None) -> dict[str, bool]:
        summary = summarize(_samples(series), pid=7, interval_s=1.0, windows=windows, load_start_s=1000)
        return {g.gate: g.passed for g in (gates or Gates.soak()).evaluate(client, summary)}

    flat = {"server_rss": [100] * 6, "stubs_rss": [200] * 6, "server_shm": [2] * 6, "server_fds": [60] * 6,
            "stubs_fds": [14] * 6, "server_threads": [98] * 6, "stubs_threads": [18] * 6}  # fmt: skip
    assert all(verdicts(flat).values()) and len(verdicts(flat)) == 10
    grown = verdicts({**flat, "stubs_rss": [200, 200, 200, 221, 222, 223], "server_fds": [60, 60, 60, 61, 61, 61]})
    assert [gate for gate, ok in grown.items() if not ok] == [
        "stubs RSS growth after warm-up ratio", "tritonserver open fds growth after warm-up",
    ]  # fmt: skip
    assert all(verdicts({**flat, "stubs_rss": [200, 200, 200, 219, 219, 219]}).values())  # 9.5 %: within 10 %
    assert all(verdicts({**flat, "server_fds": [60, 60, 60, 61, 61, 61]}, Gates.soak(max_fd_growth=1)).values())
    assert Gates().evaluate(client, None) == Gates().evaluate(client)  # resource gates are off unless asked for
    unsampled = {g.gate: g for g in Gates.soak().evaluate(client, None)}
    assert not unsampled["server restarts"].passed and unsampled["server restarts"].to_dict()["measured"] is None
    restarted = summarize(_samples(flat), pid=7, interval_s=1.0, windows=windows, load_start_s=1000)
    restarted["server_pids"] = [7, 8]
    assert not {g.gate: g.passed for g in Gates.soak().evaluate(client, restarted)}["server restarts"]
    with pytest.raises(GateError, match="max_fd_growth"):
        Gates.soak(max_fd_growth=-1)


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
        gates=Gates.soak(),  # the long soak's gates: no failure, memory +10 % at most, no fd or thread growth
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
    assert resources["server_fds"]["start"] > 0 and resources["stubs_threads"]["start"] > 0
    gates = {g.gate: g for g in summary.gates}
    growth = [g for name, g in gates.items() if "growth after warm-up" in name]
    assert len(growth) == 7 and gates["server restarts"].measured == 0
    assert all(g.passed for g in growth), [g.to_dict() for g in growth]
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


