"""Bench harness: goal arithmetic on typed rows, caching, and quick end-to-end runs on the tiny demo."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import _reports
import pytest

from tritonize.bench import (
    BenchConfig,
    BenchError,
    BenchResult,
    Load,
    Measurement,
    RowKey,
    RowPath,
    best_rows,
    evaluate_goals,
    percentile,
    to_markdown,
)
from tritonize.spec import Task


def _row(key: RowKey, seq_per_s: float, p50: float | None = None, p99: float | None = None, **extra) -> Measurement:
    return Measurement(key=key, texts=100, seconds=100 / seq_per_s, p50_ms=p50, p99_ms=p99, **extra)


def _served(level: int, protocol: str = "grpc", load: Load = Load.CONCURRENCY, per_request: int = 1) -> RowKey:
    return RowKey(path=RowPath.SERVED, load=load, level=level, protocol=protocol, texts_per_request=per_request)


def test_percentile_is_nearest_rank_when_given_values() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile([7.0], 99)) == (50, 99, 7.0)


def test_evaluate_goals_compares_best_served_with_baselines_when_rows_present() -> None:
    result = BenchResult(config={})
    result.rows = [
        _row(_served(1), 40, p50=10.0),
        _row(_served(32), 90),
        _row(_served(32, "http"), 80),
        _row(RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc"), 45, p50=12.0, p99=40.0, rate=45.0),
        _row(RowKey(path=RowPath.RAW_ORT, load=Load.BATCH, level=1), 60, p50=8.0),
        _row(RowKey(path=RowPath.RAW_ORT, load=Load.BATCH, level=8, sorted_by_length=True), 100),
        _row(RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=1), 30),
        _row(RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=32), 36),
        _row(RowKey(path=RowPath.NO_DYNAMIC_BATCHING, load=Load.CONCURRENCY, level=32, protocol="grpc"), 50),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["served / raw ONNX Runtime at saturation"]["measured"] == pytest.approx(0.9)
    assert goals["served / raw ONNX Runtime at saturation"]["met"] is True
    assert goals["served / HF pipeline batch 1"]["measured"] == pytest.approx(3.0)
    assert goals["dynamic batching on / off at concurrency 32"]["met"] is False  # 1.8x
    assert goals["p99 at half load / idle p50"]["measured"] == pytest.approx(4.0)
    assert goals["p99 at half load / idle p50"]["met"] is False
    assert goals["concurrency 1 p50 / raw ONNX Runtime batch 1 p50"]["measured"] == pytest.approx(1.25)
    assert not any(name.startswith("T5") or "tokenizer" in name for name in goals)  # rows absent: no goal
    markdown = to_markdown(result)
    assert "| served gRPC | concurrency 32 | 90.0 | 0.90 |" in markdown
    assert "| served gRPC | open loop 45.0 req/s | 45.0 | - |" in markdown


def test_int8_goals_compare_served_int8_with_its_raw_ceiling_and_hf_batch_1_when_measured() -> None:
    result = BenchResult(config={})
    result.rows = [
        _row(RowKey(path=RowPath.SERVED_INT8, load=Load.CONCURRENCY, level=8, protocol="grpc"), 150),
        _row(RowKey(path=RowPath.SERVED_INT8, load=Load.CONCURRENCY, level=32, protocol="grpc"), 180),
        _row(RowKey(path=RowPath.RAW_ORT_INT8, load=Load.BATCH, level=8, sorted_by_length=True), 240),
        _row(RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=1), 30),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["served INT8 / HF pipeline batch 1"]["measured"] == pytest.approx(6.0)
    assert goals["served INT8 / HF pipeline batch 1"]["met"] is True
    assert goals["served INT8 / raw INT8 ONNX Runtime"]["measured"] == pytest.approx(0.75)
    assert goals["served INT8 / raw INT8 ONNX Runtime"]["met"] is False
    assert "| raw ONNX Runtime INT8 | batch 8, sorted by length | 240.0 |" in to_markdown(result)


def test_overhead_goal_uses_best_served_row_at_saturation_when_tokenizer_measured() -> None:
    result = BenchResult(config={"cpus": 2})
    result.rows = [
        _row(_served(16, "grpc", Load.SATURATION, per_request=1), 800),
        _row(_served(4, "http", Load.SATURATION, per_request=32), 9000, cpu_share=0.9),
        _row(RowKey(path=RowPath.TOKENIZER, load=Load.BATCH, level=1), 30000),
        _row(RowKey(path=RowPath.TOKENIZER, load=Load.BATCH, level=32), 40000, cpu_share=0.2),
        _row(RowKey(path=RowPath.IN_PROCESS, load=Load.BATCH, level=32), 12000),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["served texts/s / tokenizer alone"]["measured"] == pytest.approx(9000 / 40000)
    assert goals["served texts/s / tokenizer alone"]["met"] is False
    assert goals["served texts/s / tokenizer + ORT in-process"]["measured"] == pytest.approx(0.75)
    # per CPU-second: 9000 / 1.8 = 5000 vs 40000 / 0.4 = 100000
    assert goals["served / tokenizer alone, per CPU-second"]["measured"] == pytest.approx(0.05)
    assert "served / raw ONNX Runtime at saturation" not in goals  # standard rows absent
    assert "saturation 4, 32 texts/request" in goals["served texts/s / tokenizer alone"]["detail"]


def test_bench_config_rejects_partial_server_or_unknown_rows_when_given() -> None:
    with pytest.raises(BenchError, match="repository"):
        BenchConfig(grpc_url="127.0.0.1:8001")
    with pytest.raises(BenchError, match="--rows"):
        BenchConfig(rows="everything")
    assert BenchConfig(demo="tiny").row_set == "all" and BenchConfig(demo="full").row_set == "standard"


def test_best_rows_keeps_fastest_pass_and_lowest_open_loop_p99_when_passes_repeat() -> None:
    open_key = RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc")
    rows = [
        _row(_served(32), 80),
        replace(_row(_served(32), 95), pass_index=1),
        _row(open_key, 40, p50=10, p99=50, rate=40.0),
        replace(_row(open_key, 47.5, p50=10, p99=30, rate=47.5), pass_index=1),
    ]
    best = {row.key: row for row in best_rows(rows)}
    assert best[_served(32)].seq_per_s == pytest.approx(95)
    assert best[open_key].p99_ms == 30 and best[open_key].setting == "open loop 47.5 req/s"


def test_fingerprint_changes_when_spec_or_options_change() -> None:
    from tritonize.bench.repositories import fingerprint
    from tritonize.spec import load_spec

    spec = load_spec().select(["distilbert_emotion"])
    changed = replace(spec, models=(spec.models[0].replace(max_queue_delay_us=1),))
    base = fingerprint(spec, "tiny", True)
    assert base == fingerprint(spec, "tiny", True)
    assert len({base, fingerprint(changed, "tiny", True), fingerprint(spec, "full", True), fingerprint(spec, "tiny", False)}) == 4


def test_deployments_come_from_build_report_when_names_are_custom(tmp_path: Path) -> None:
    from tritonize.bench.repositories import Deployments

    _reports.write(tmp_path, {"my_t5": Task.TEXT2TEXT_GENERATION, "my_cls": Task.TEXT_CLASSIFICATION})
    found = Deployments.of(tmp_path)
    assert (found.classifier, found.generator) == ("my_cls", "my_t5")
    with pytest.raises(BenchError, match="no_such"):
        Deployments.of(tmp_path, "no_such")
    with pytest.raises(BenchError, match="build_report"):
        Deployments.of(tmp_path / "missing")


def test_own_cpu_share_counts_this_process_when_busy() -> None:
    from tritonize.bench.cpu import OwnCpu

    with OwnCpu() as own:
        sum(i * i for i in range(2_000_000))
    assert own.share is not None and 0 < own.share <= 1


def _on_server(server, out: Path, **settings) -> BenchConfig:
    """A quick tiny bench against the session server (no repository built, one client process)."""
    return BenchConfig(
        demo="tiny",
        quick=True,
        client_processes=1,
        repository=server.repository,
        http_url=server.http_url,
        grpc_url=server.grpc_url,
        admin_key=server.admin_key,
        out=out,
        **settings,
    )


@pytest.mark.triton
@pytest.mark.slow
def test_bench_quick_runs_every_row_set_end_to_end_when_given_tiny_server(triton_server, tmp_path: Path) -> None:
    from tritonize.bench import run_bench

    config = _on_server(triton_server, tmp_path, texts=32, half_load_s=1.0, saturation_s=1.0)
    result = run_bench(config, log=lambda line: None)
    keys = {r.key for r in result.rows}
    for expected in [
        _served(32),
        _served(1, "http"),
        RowKey(path=RowPath.RAW_ORT, load=Load.BATCH, level=32, sorted_by_length=True),
        RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=32),
        RowKey(path=RowPath.NO_DYNAMIC_BATCHING, load=Load.CONCURRENCY, level=32, protocol="grpc"),
        RowKey(path=RowPath.TOKENIZER, load=Load.BATCH, level=32),
        RowKey(path=RowPath.IN_PROCESS, load=Load.BATCH, level=32),
        RowKey(path=RowPath.SERVED_INT8, load=Load.CONCURRENCY, level=32, protocol="grpc"),
        RowKey(path=RowPath.RAW_ORT_INT8, load=Load.BATCH, level=8, sorted_by_length=True),
        _served(16, "grpc", Load.SATURATION, per_request=1),
        _served(4, "http", Load.SATURATION, per_request=32),
    ]:
        assert expected in keys, expected
    assert all(r.seq_per_s > 0 for r in result.rows)
    saturated = [r for r in result.rows if r.key.load is Load.SATURATION]
    assert len(saturated) == 4 and all(r.server for r in saturated)  # per-step statistics read with the admin key
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved["all_passes"]) >= len(saved["rows"])
    names = {g["goal"] for g in saved["goals"]}
    assert {"served texts/s / tokenizer alone", "concurrency 1 p50 / raw ONNX Runtime batch 1 p50"} <= names
    assert (tmp_path / "bench.md").read_text().startswith("# tritonize bench")


@pytest.mark.triton
def test_bench_overhead_rows_alone_build_no_variants_when_asked(triton_server, tmp_path: Path) -> None:
    from tritonize.bench import run_bench

    config = _on_server(triton_server, tmp_path, texts=16, saturation_s=0.5, rows="overhead")
    result = run_bench(config, log=lambda line: None)
    paths = {r.key.path for r in result.rows}
    assert {RowPath.TOKENIZER, RowPath.IN_PROCESS} <= paths
    assert not paths & {RowPath.RAW_ORT, RowPath.SERVED_INT8, RowPath.NO_DYNAMIC_BATCHING, RowPath.HF_PIPELINE}
    assert not any("INT8" in note for note in result.notes)


def test_torch_goals_judge_32_text_rows_against_the_cuda_graph_ceiling_when_measured() -> None:
    half_key = RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc", texts_per_request=32)
    result = BenchResult(config={})
    result.rows = [
        _row(_served(4, "grpc", Load.SATURATION, per_request=32), 42_000),
        _row(_served(128), 9_000),
        _row(half_key, 21_000, p50=20.0, p99=55.0, rate=328.1),
        _row(RowKey(path=RowPath.RAW_TORCH, load=Load.BATCH, level=256, sorted_by_length=True), 60_000),
        _row(RowKey(path=RowPath.RAW_TORCH_GRAPHS, load=Load.BATCH, level=256, sorted_by_length=True), 100_000),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["served classifications/s, 32-text requests"]["met"] is True
    assert goals["served / raw PyTorch at saturation"]["measured"] == pytest.approx(0.42)  # vs graphs, not eager
    assert goals["p99 ms of 32-text requests at half load"]["met"] is False  # 55 > 50
    assert not any("ONNX Runtime" in name for name in goals)  # no raw ORT rows: no ORT goals
    markdown = to_markdown(result)
    assert "Ceiling: raw PyTorch + CUDA graphs, batch 256, sorted by length." in markdown
    assert "| served gRPC | open loop 328.1 req/s, 32 texts/request |" in markdown


TRITON_GPU_METRICS = """\
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5
# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes
# TYPE nv_gpu_memory_used_bytes gauge
nv_gpu_memory_used_bytes{gpu_uuid="GPU-1"} 2147483648
nv_gpu_memory_total_bytes{gpu_uuid="GPU-1"} 150323855360
nv_inference_count{model="m",version="1"} 7
"""


def test_gpu_sampler_reads_triton_gpu_gauges_over_http_when_a_server_exports_them() -> None:
    import http.server
    import threading

    from tritonize.bench.gpu import GpuSampler, read_gpus

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's hook name
            body = TRITON_GPU_METRICS.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        assert read_gpus(url) == {"GPU-1": {"nv_gpu_utilization": 0.5, "nv_gpu_memory_used_bytes": 2 ** 31,
                                            "nv_gpu_memory_total_bytes": 150323855360.0}}  # fmt: skip
        with GpuSampler(url, interval_s=0.05) as gpu:
            time.sleep(0.3)
    finally:
        server.shutdown()
    summary = gpu.summary()["GPU-1"]
    assert summary["samples"] >= 1 and summary["utilization_mean_pct"] == summary["utilization_max_pct"] == 50.0
    assert (summary["memory_used_max_mib"], summary["memory_total_mib"]) == (2048, 143360)
    assert read_gpus("http://127.0.0.1:9/metrics") == {}  # nothing answers: no GPUs, no error


def test_torch_half_load_goal_fails_when_the_server_refused_requests() -> None:
    half_key = RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc", texts_per_request=32)
    result = BenchResult(config={})
    result.rows = [
        _row(RowKey(path=RowPath.RAW_TORCH, load=Load.BATCH, level=32, sorted_by_length=True), 1_000),
        replace(_row(half_key, 3_200, p50=10.0, p99=20.0, rate=50.0), refused=7),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["p99 ms of 32-text requests at half load"]["met"] is False  # p99 20 ms, but 7 never answered
    assert "the server refused 7 requests (full queue)" in to_markdown(result)


@pytest.mark.triton
def test_open_loop_counts_refused_requests_instead_of_failing_when_the_queue_is_full(constrained_server) -> None:
    """The constrained deployment's queue holds 2 requests: an open loop far above its throughput
    is refused in part. The run finishes and says how many (it used to stop at the first refusal)."""
    import asyncio

    from tritonize.bench import drivers
    from tritonize.corpus import builtin_emotion

    texts = [e.text for e in builtin_emotion()]
    refused: list[int] = []
    _, latencies = asyncio.run(
        drivers.open_loop(constrained_server.grpc_url, "grpc", "distilbert_emotion", texts, 2000.0, 0.2, 32, refused)
    )
    assert refused and refused[0] > 0 and refused[0] + len(latencies) == 400


def test_bench_config_rejects_compare_path_without_a_build_report(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="--compare"):
        BenchConfig(compare=tmp_path)


@pytest.mark.triton
def test_bench_compare_measures_both_builds_saturation_and_half_load_rows_when_asked(
    triton_server, classifier_repository, tmp_path: Path
) -> None:
    """`--compare` adds the other build's rows of both kinds, beside the session server's, in one run."""
    from tritonize.bench import run_bench

    config = _on_server(triton_server, tmp_path, texts=16, half_load_s=0.5, saturation_s=0.5, rows="overhead")
    result = run_bench(replace(config, compare=classifier_repository), log=lambda line: None)
    for path in (RowPath.SERVED, RowPath.SERVED_COMPARED):
        loads = {r.key.load for r in result.rows if r.key.path is path and r.seq_per_s > 0}
        assert {Load.SATURATION, Load.OPEN_LOOP} <= loads, path
