"""The bench's goals: ratios of rows measured in the same run, found by their typed keys."""

from __future__ import annotations

from typing import Any

from tritonize.bench.rows import BenchResult, Load, Measurement, RowPath


def _ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    return a.seq_per_s / b.seq_per_s if a and b and b.seq_per_s else None


def _latency_ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _where(row: Measurement | None) -> str:
    return f"{row.path}, {row.setting}" if row else "-"


def goal(
    name: str, measured: float | None, target: float, detail: str, rows: list[Measurement | None], higher: bool = True
) -> dict[str, Any]:
    met = None if measured is None else (measured >= target if higher else measured <= target)
    shares = [r.cpu_share for r in rows if r is not None and r.cpu_share is not None]
    return {
        "goal": name,
        "target": target,
        "measured": measured,
        "met": met,
        "detail": detail,
        "higher_is_better": higher,
        "min_cpu_share": min(shares) if shares else None,
    }


def _best_served(result: BenchResult, texts_per_request: int | None = None) -> Measurement | None:
    rows = [
        r for r in result.select(path=RowPath.SERVED, generative=False)
        if r.key.load is not Load.OPEN_LOOP and texts_per_request in (None, r.key.texts_per_request)
    ]  # fmt: skip
    return max(rows, key=lambda r: r.seq_per_s, default=None)


def serving_goals(result: BenchResult) -> list[dict[str, Any]]:
    """Served vs raw ONNX Runtime and the HF pipeline, batching, latency (single-text requests)."""
    served = _best_served(result, texts_per_request=1)
    raw = result.fastest(path=RowPath.RAW_ORT)
    raw1 = result.find(path=RowPath.RAW_ORT, level=1)
    hf1, hf32 = result.find(path=RowPath.HF_PIPELINE, level=1), result.find(path=RowPath.HF_PIPELINE, level=32)
    dyn = result.find(path=RowPath.SERVED, load=Load.CONCURRENCY, level=32, protocol="grpc", generative=False)
    static = result.find(path=RowPath.NO_DYNAMIC_BATCHING, level=32)
    idle = result.find(path=RowPath.SERVED, load=Load.CONCURRENCY, level=1, protocol="grpc", generative=False)
    idle_best = min(
        (r for r in result.select(path=RowPath.SERVED, load=Load.CONCURRENCY, level=1, generative=False) if r.p50_ms),
        key=lambda r: r.p50_ms or 0.0, default=None,
    )  # fmt: skip
    half = result.find(load=Load.OPEN_LOOP)
    best = f"best served ({_where(served)})"
    return [
        goal("served / raw ONNX Runtime at saturation", _ratio(served, raw), 0.85,
             f"{best} vs best raw ({raw.setting if raw else '-'})", [served, raw]),
        goal("served / HF pipeline batch 1", _ratio(served, hf1), 3.0, best, [served, hf1]),
        goal("served / HF pipeline batch 32", _ratio(served, hf32), 1.5, best, [served, hf32]),
        goal("dynamic batching on / off at concurrency 32", _ratio(dyn, static), 2.0, "gRPC, one text per request",
             [dyn, static]),
        goal("p99 at half load / idle p50", _latency_ratio(half.p99_ms if half else None, idle.p50_ms if idle else None),
             3.0, "open loop at half the best gRPC throughput vs gRPC concurrency 1 p50", [half, idle], higher=False),
        goal("concurrency 1 p50 / raw ONNX Runtime batch 1 p50",
             _latency_ratio(idle_best.p50_ms if idle_best else None, raw1.p50_ms if raw1 else None), 1.3,
             f"{_where(idle_best)} vs raw batch 1, unpadded", [idle_best, raw1], higher=False),
    ]  # fmt: skip


def overhead_goals(result: BenchResult) -> list[dict[str, Any]]:
    """Serving overhead: the served deployment at saturation vs the tokenizer alone on the same texts."""
    served = _best_served(result)
    tokenizer = result.fastest(path=RowPath.TOKENIZER)
    work = result.find(path=RowPath.IN_PROCESS)
    goals = [
        goal("served texts/s / tokenizer alone", _ratio(served, tokenizer), 0.5,
             f"best served ({_where(served)}) vs fastest tokenizer ({tokenizer.setting if tokenizer else '-'})",
             [served, tokenizer]),
    ]  # fmt: skip
    cpus = result.config.get("cpus")
    per_cpu = [r.per_cpu_second(cpus) if r else None for r in (served, tokenizer)]
    goals.append(
        goal("served / tokenizer alone, per CPU-second", per_cpu[0] / per_cpu[1] if all(per_cpu) else None, 0.5,
             "the same ratio on texts per CPU-second of the benchmark's processes (client included): "
             "what contention from other jobs distorts least", [served, tokenizer])
    )  # fmt: skip
    if work:
        goals.append(
            goal("served texts/s / tokenizer + ORT in-process", _ratio(served, work), 0.5,
                 f"best served vs the same work without a server ({work.setting})", [served, work])
        )  # fmt: skip
    return goals


def int8_goals(result: BenchResult) -> list[dict[str, Any]]:
    """INT8 served against its own ceiling (raw INT8 ONNX Runtime) and against the HF pipeline."""
    served = max(result.select(path=RowPath.SERVED_INT8), key=lambda r: r.seq_per_s, default=None)
    raw = result.fastest(path=RowPath.RAW_ORT_INT8)
    hf1 = result.find(path=RowPath.HF_PIPELINE, level=1)
    if served is None:
        return []
    best = f"best served INT8 ({_where(served)})"
    return [
        goal("served INT8 / HF pipeline batch 1", _ratio(served, hf1), 6.0, best, [served, hf1]),
        goal("served INT8 / raw INT8 ONNX Runtime", _ratio(served, raw), 0.85,
             f"{best} vs best raw INT8 ({raw.setting if raw else '-'})", [served, raw]),
    ]  # fmt: skip


def generation_goals(result: BenchResult) -> list[dict[str, Any]]:
    t5 = result.find(path=RowPath.SERVED, generative=True, level=32)
    gen32 = result.find(path=RowPath.HF_GENERATE, level=32)
    if not (t5 or gen32):
        return []
    return [
        goal("T5 served c32 / model.generate batch 32", _ratio(t5, gen32), 2.0,
             "same texts; 32 concurrent single-text requests vs generate on batches of 32", [t5, gen32])
    ]  # fmt: skip


SERVED_TEXTS_GOAL = 40_000  # DistilBERT classifications/s served on one H200 with 32-text requests
TORCH_CEILING_GOAL = 0.4  # served / raw PyTorch with CUDA graphs at saturation
HALF_LOAD_P99_MS = 50.0


def _p99_answering_all(row: Measurement | None) -> float | None:
    """The row's p99, or infinity when the server refused some requests (they never got an answer)."""
    if row is None:
        return None
    return float("inf") if row.refused else row.p99_ms


def torch_goals(result: BenchResult) -> list[dict[str, Any]]:
    """The PyTorch runtime's goals: served texts/s in 32-text requests, served / raw PyTorch (with
    CUDA graphs where measured), p99 of 32-text requests at half that load."""
    served32 = _best_served(result, texts_per_request=32)
    served = _best_served(result)
    graphs = result.fastest(path=RowPath.RAW_TORCH_GRAPHS)
    raw = graphs or result.fastest(path=RowPath.RAW_TORCH)
    half = result.find(path=RowPath.SERVED, load=Load.OPEN_LOOP, texts_per_request=32)
    ceiling = "raw PyTorch + CUDA graphs" if graphs else "raw PyTorch (no CUDA graphs: CPU)"
    return [
        goal("served classifications/s, 32-text requests", served32.seq_per_s if served32 else None, SERVED_TEXTS_GOAL,
             f"best served ({_where(served32)}); the goal is one H200's", [served32]),
        goal("served / raw PyTorch at saturation", _ratio(served, raw), TORCH_CEILING_GOAL,
             f"best served ({_where(served)}) vs best {ceiling} ({raw.setting if raw else '-'})", [served, raw]),
        goal("p99 ms of 32-text requests at half load", _p99_answering_all(half), HALF_LOAD_P99_MS,
             "open loop, gRPC, at half the best 32-text saturation throughput; any refused request fails it",
             [half], higher=False),
    ]  # fmt: skip


def evaluate_goals(result: BenchResult) -> list[dict[str, Any]]:
    """Every goal whose rows were measured in this run."""
    goals = []
    if result.select(path=RowPath.RAW_TORCH):
        goals += torch_goals(result)
    if result.select(path=RowPath.SERVED, texts_per_request=1, load=Load.CONCURRENCY) and result.select(path=RowPath.RAW_ORT):
        goals += serving_goals(result)
    if result.select(path=RowPath.TOKENIZER):
        goals += overhead_goals(result)
    return goals + int8_goals(result) + generation_goals(result)
