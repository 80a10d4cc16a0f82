"""Load test: parsing of Triton's counters and Locust's output, and short real Locust runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    assert client.requests > 0 and client.failures == 0
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
