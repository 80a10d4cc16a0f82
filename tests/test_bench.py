"""Bench harness: goal arithmetic on fixed rows, and a quick end-to-end run on the tiny demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tritonize.bench import BenchConfig, BenchError, BenchResult, Measurement, evaluate_goals, percentile, to_markdown


def _row(path: str, setting: str, seq_per_s: float, p50: float | None = None, p99: float | None = None) -> Measurement:
    return Measurement(path=path, setting=setting, texts=100, seconds=100 / seq_per_s, p50_ms=p50, p99_ms=p99)


def test_percentile_is_nearest_rank_when_given_values() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile([7.0], 99)) == (50, 99, 7.0)


def test_evaluate_goals_compares_best_served_with_baselines_when_rows_present() -> None:
    result = BenchResult(config={})
    result.rows = [
        _row("served gRPC", "concurrency 1", 40, p50=10.0),
        _row("served gRPC", "concurrency 32", 90),
        _row("served HTTP", "concurrency 32", 80),
        _row("served gRPC", "open loop 45.0 req/s", 45, p50=12.0, p99=40.0),
        _row("raw ONNX Runtime", "batch 1, unpadded", 60),
        _row("raw ONNX Runtime", "batch 8, sorted by length", 100),
        _row("HF pipeline", "batch 1", 30),
        _row("HF pipeline", "batch 32", 36),
        _row("no dyn. batching gRPC", "concurrency 32", 50),
    ]
    goals = {g["goal"]: g for g in evaluate_goals(result)}
    assert goals["served / raw ONNX Runtime at saturation"]["measured"] == pytest.approx(0.9)
    assert goals["served / raw ONNX Runtime at saturation"]["met"] is True
    assert goals["served / HF pipeline batch 1"]["measured"] == pytest.approx(3.0)
    assert goals["dynamic batching on / off at concurrency 32"]["met"] is False  # 1.8x
    assert goals["p99 at half load / idle p50"]["measured"] == pytest.approx(4.0)
    assert goals["p99 at half load / idle p50"]["met"] is False
    assert not any(name.startswith("T5") for name in goals)  # no T5 rows: no T5 goal
    assert "| served gRPC | concurrency 32 | 90.0 | 0.90 |" in to_markdown(result)


def test_bench_config_rejects_partial_server_when_urls_incomplete() -> None:
    with pytest.raises(BenchError, match="repository"):
        BenchConfig(grpc_url="127.0.0.1:8001")


@pytest.mark.triton
@pytest.mark.slow
def test_bench_quick_runs_end_to_end_when_given_tiny_server(triton_server, tmp_path: Path) -> None:
    from tritonize.bench import run_bench

    config = BenchConfig(
        demo="tiny",
        quick=True,
        texts=32,
        half_load_s=2.0,
        repository=triton_server.repository,
        http_url=triton_server.http_url,
        grpc_url=triton_server.grpc_url,
        out=tmp_path,
    )
    result = run_bench(config, log=lambda line: None)
    paths = {(r.path, r.setting) for r in result.rows}
    for expected in [
        ("served gRPC", "concurrency 32"),
        ("served HTTP", "concurrency 1"),
        ("raw ONNX Runtime", "batch 32, sorted by length"),
        ("HF pipeline", "batch 32"),
        ("no dyn. batching gRPC", "concurrency 32"),
    ]:
        assert expected in paths
    assert all(r.seq_per_s > 0 for r in result.rows)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved["all_passes"]) >= len(saved["rows"])
    assert [(r["path"], r["setting"]) for r in saved["rows"]] == [(r.path, r.setting) for r in result.rows]
    for row in saved["rows"]:
        assert row["texts"] > 0 and row["seconds"] > 0 and row["seq_per_s"] == pytest.approx(row["texts"] / row["seconds"])
        if row["path"] in ("served gRPC", "served HTTP") and row["setting"].startswith("concurrency"):
            assert 0 < row["p50_ms"] <= row["p99_ms"], row  # served rows carry latencies
    for goal in saved["goals"]:
        assert {"goal", "target", "measured", "met"} <= set(goal), goal
    assert len(saved["goals"]) >= 5 and (tmp_path / "bench.md").read_text().startswith("# tritonize bench")


def test_best_rows_keeps_fastest_pass_and_lowest_open_loop_p99_when_passes_repeat() -> None:
    from dataclasses import replace

    from tritonize.bench import best_rows

    rows = [
        _row("served gRPC", "concurrency 32", 80),
        replace(_row("served gRPC", "concurrency 32", 95), pass_index=1),
        _row("served gRPC", "open loop 40.0 req/s", 40, p50=10, p99=50),
        replace(_row("served gRPC", "open loop 47.5 req/s", 47.5, p50=10, p99=30), pass_index=1),
    ]
    best = {row.key: row for row in best_rows(rows)}
    assert best[("served gRPC", "concurrency 32")].seq_per_s == pytest.approx(95)
    assert best[("served gRPC", "open loop")].p99_ms == 30
