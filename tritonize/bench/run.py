"""One bench run: build or reuse the repositories, measure the row sets, keep each row's best pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tritonize.bench import baselines, drivers
from tritonize.bench.baselines import BenchError
from tritonize.bench.cpu import measure
from tritonize.bench.goals import evaluate_goals
from tritonize.bench.report import write_result
from tritonize.bench.repositories import (
    Deployments,
    Endpoints,
    bench_models,
    ensure_repository,
    serving,
    statistics_delta,
    step_statistics,
)
from tritonize.bench.rows import BenchResult, Load, Measurement, RowKey, RowPath, best_rows, latency_fields
from tritonize.demo import SIZES
from tritonize.urls import PROTOCOLS

logger = logging.getLogger(__name__)

CONCURRENCY = (1, 8, 32)
RAW_BATCHES = (8, 32)
HF_BATCHES = (1, 32)
TOKENIZER_BATCHES = (1, 32)
OVERHEAD_TEXTS_PER_REQUEST = (1, 32)
MIN_TOKENIZER_TEXTS = 1024  # the tokenizer alone takes microseconds per text: time enough of them
ROW_SETS = ("standard", "overhead", "all")

Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to measure. ``repository`` + ``http_url``/``grpc_url`` reuse a running server.

    ``rows``: ``standard`` (served vs raw ONNX Runtime, HF, batching, latency, T5), ``overhead``
    (served at saturation vs the tokenizer alone) or ``all``; default ``all`` for the tiny demo
    (its engine is nearly free, so it shows the serving overhead) and ``standard`` for full.
    """

    demo: str = "full"
    quick: bool = False
    corpus: Path | None = None
    out: Path = Path("artifacts/bench")
    texts: int | None = None  # texts per measurement (default 240, quick 48)
    half_load_s: float | None = None  # open-loop duration (default 15 s, quick 3 s)
    saturation_s: float | None = None  # each saturation row (default 8 s, quick 2 s)
    repository: Path | None = None
    http_url: str | None = None
    grpc_url: str | None = None
    admin_key: str | None = None
    rebuild: bool = False
    hf: bool = True
    passes: int | None = None  # whole-bench repetitions; each row keeps its best pass (default 2, quick 1)
    rows: str | None = None
    client_processes: int | None = None  # saturation load generators (default: half the cores)
    spec: Path | None = None
    model: str | None = None  # the classification deployment (default: the first one built)

    def __post_init__(self) -> None:
        if self.demo not in SIZES:
            raise BenchError(f"--demo must be one of {SIZES}, got {self.demo!r}")
        if (self.http_url or self.grpc_url) and not (self.http_url and self.grpc_url and self.repository):
            raise BenchError("a running server needs repository, http_url and grpc_url together")
        if self.rows is not None and self.rows not in ROW_SETS:
            raise BenchError(f"--rows must be one of {ROW_SETS}, got {self.rows!r}")
        if self.client_processes is not None and self.client_processes < 1:
            raise BenchError(f"--client-processes must be >= 1, got {self.client_processes}")

    @property
    def n_texts(self) -> int:
        return self.texts or (48 if self.quick else 240)

    @property
    def open_loop_s(self) -> float:
        return self.half_load_s or (3.0 if self.quick else 15.0)

    @property
    def saturation_seconds(self) -> float:
        return self.saturation_s or (2.0 if self.quick else 8.0)

    @property
    def n_passes(self) -> int:
        return self.passes or (1 if self.quick else 2)

    @property
    def row_set(self) -> str:
        return self.rows or ("all" if self.demo == "tiny" else "standard")

    @property
    def processes(self) -> int:
        return self.client_processes or drivers.default_client_processes()


@dataclass(frozen=True, kw_only=True)
class Session:
    """What one pass works with."""

    config: BenchConfig
    repository: Path
    static: Path | None
    int8: Path | None
    deployments: Deployments
    texts: list[str]
    spec: Any
    log: Log
    notes: tuple[str, ...] = ()  # what the session could not set up (an INT8 variant that failed its gate)


# -- served rows -------------------------------------------------------------------------------


def _served_closed_loop(s: Session, endpoints: Endpoints, protocol: str, concurrency: int, path: RowPath) -> Measurement:
    url = endpoints.grpc_url if protocol == "grpc" else endpoints.http_url
    key = RowKey(path=path, load=Load.CONCURRENCY, level=concurrency, protocol=protocol)
    work = lambda: asyncio.run(drivers.closed_loop(url, protocol, s.deployments.classifier, s.texts, concurrency))  # noqa: E731
    return measure(key, len(s.texts), work, deployment=s.deployments.classifier)


def measure_served(s: Session, endpoints: Endpoints) -> list[Measurement]:
    rows = []
    for protocol in PROTOCOLS:
        for concurrency in CONCURRENCY:
            rows.append(_served_closed_loop(s, endpoints, protocol, concurrency, RowPath.SERVED))
            s.log(f"{rows[-1].path} {rows[-1].setting}: {rows[-1].seq_per_s:.1f} seq/s, p50 {rows[-1].p50_ms:.1f} ms")
    best = max((r for r in rows if r.key.protocol == "grpc"), key=lambda r: r.seq_per_s)
    rate, duration = best.seq_per_s / 2, s.config.open_loop_s
    key = RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc")
    work = lambda: asyncio.run(  # noqa: E731
        drivers.open_loop(endpoints.grpc_url, "grpc", s.deployments.classifier, s.texts, rate, duration)
    )
    rows.append(measure(key, None, work, rate=rate, deployment=s.deployments.classifier))
    s.log(f"{rows[-1].path} {rows[-1].setting}: p50 {rows[-1].p50_ms:.1f} ms, p99 {rows[-1].p99_ms:.1f} ms")
    return rows


def measure_saturation(s: Session, endpoints: Endpoints) -> list[Measurement]:
    """The served classifier at saturation from several client processes, 1 and 32 texts per
    request, both protocols; with each step's average batch and compute time per execute."""
    rows = []
    for protocol in PROTOCOLS:
        for per_request in OVERHEAD_TEXTS_PER_REQUEST:
            run = drivers.Saturation(
                url=endpoints.grpc_url if protocol == "grpc" else endpoints.http_url,
                protocol=protocol,
                model=s.deployments.classifier,
                texts_per_request=per_request,
                processes=s.config.processes,
                in_flight=16 if per_request == 1 else 4,
                duration=s.config.saturation_seconds,
            )
            before = step_statistics(endpoints)
            seconds, latencies, done, share = drivers.saturate(run, s.texts)
            server = statistics_delta(before, step_statistics(endpoints)) if before else {}
            key = RowKey(
                path=RowPath.SERVED, load=Load.SATURATION, level=run.processes * run.in_flight,
                protocol=protocol, texts_per_request=per_request,
            )  # fmt: skip
            row = Measurement(
                key=key, texts=done, seconds=seconds, cpu_share=share, server=server,
                deployment=s.deployments.classifier, **latency_fields(latencies),
            )  # fmt: skip
            rows.append(row)
            s.log(f"{row.path} {row.setting}: {row.seq_per_s:.0f} texts/s ({run.processes} client processes)")
    return rows


def measure_t5(s: Session, endpoints: Endpoints, result: BenchResult) -> list[Measurement]:
    name = s.deployments.generator
    if name is None:
        result.notes.append("T5: skipped, the repository has no text2text-generation deployment")
        return []
    max_new_tokens = _max_new_tokens(s, name)
    rows = []
    for concurrency in (1, 32):  # served vs generate at concurrency 1 and 32, same inputs
        key = RowKey(path=RowPath.SERVED, load=Load.CONCURRENCY, level=concurrency, protocol="grpc", generative=True)
        work = lambda c=concurrency: asyncio.run(  # noqa: E731
            drivers.generate_closed_loop(endpoints.grpc_url, name, s.texts, c, max_new_tokens)
        )
        rows.append(measure(key, len(s.texts), work, deployment=name))
        s.log(f"T5 {name} {rows[-1].setting}: served {rows[-1].seq_per_s:.1f} seq/s")
    checkpoint = s.deployments.checkpoint(name)
    if checkpoint:
        rows += [replace(r, deployment=name) for r in baselines.hf_generate(checkpoint, s.texts, max_new_tokens, (1, 32))]
    return rows


def _max_new_tokens(s: Session, name: str) -> int:
    try:
        return s.spec.get(name).max_new_tokens
    except (KeyError, ValueError):  # a repository built from another spec: the entry model's own default
        from tritonize.bench.baselines import step_parameters

        return int(step_parameters(s.repository, name).get("max_new_tokens", "1"))


# -- one pass ----------------------------------------------------------------------------------


def _served_pass(s: Session, result: BenchResult) -> None:
    config = s.config
    standard, overhead = config.row_set in ("standard", "all"), config.row_set in ("overhead", "all")
    if config.grpc_url:  # a server someone else started
        running = Endpoints(http_url=str(config.http_url), grpc_url=str(config.grpc_url), admin_key=config.admin_key)
        endpoints_cm: Any = contextlib.nullcontext(running)
    else:
        endpoints_cm = serving(s.repository)
    with endpoints_cm as endpoints:
        if standard:
            result.rows += measure_served(s, endpoints)
        if overhead:
            result.rows += measure_saturation(s, endpoints)
        if standard:
            result.rows += measure_t5(s, endpoints, result)


def one_pass(s: Session) -> BenchResult:
    result = BenchResult(config={})
    _served_pass(s, result)
    name = s.deployments.classifier
    if s.config.row_set in ("overhead", "all"):
        texts = [s.texts[i % len(s.texts)] for i in range(max(len(s.texts), MIN_TOKENIZER_TEXTS))]
        result.rows += baselines.tokenizer_alone(s.repository, name, texts, TOKENIZER_BATCHES)
        result.rows.append(baselines.in_process_pipeline(s.repository, name, texts if s.config.demo == "tiny" else s.texts, 32))
        s.log(f"tokenizer alone: {', '.join(f'{r.setting} {r.seq_per_s:.0f}' for r in result.rows[-3:-1])} texts/s")
    if s.config.row_set == "overhead":
        return result
    result.rows += baselines.raw_onnxruntime(s.repository, name, s.texts, RAW_BATCHES)
    s.log(f"raw ONNX Runtime best: {result.fastest(path=RowPath.RAW_ORT).seq_per_s:.1f} seq/s")
    checkpoint = s.deployments.checkpoint(name)
    if s.config.hf and checkpoint:
        result.rows += baselines.hf_pipeline(checkpoint, s.texts, HF_BATCHES)
        s.log(f"HF pipeline: {', '.join(f'{r.setting} {r.seq_per_s:.1f} seq/s' for r in result.rows[-2:])}")
    else:
        reason = "--no-hf" if not s.config.hf else "no checkpoint in build_report.json"
        result.notes.append(f"HF pipeline: skipped ({reason})")
    if s.static is not None:
        with serving(s.static) as endpoints:
            row = _served_closed_loop(s, endpoints, "grpc", 32, RowPath.NO_DYNAMIC_BATCHING)
        result.rows.append(row)
        s.log(f"{row.path} {row.setting}: {row.seq_per_s:.1f} seq/s")
    if s.int8 is not None:
        result.rows += measure_int8(s, s.int8, result)
    return result


def measure_int8(s: Session, repository: Path, result: BenchResult) -> list[Measurement]:
    """The classifier built with precision int8 (``repository``): served (gRPC, concurrency 8 and
    32) and its own raw ONNX Runtime ceiling; the build's accuracy gate goes into the notes."""
    name = s.deployments.classifier
    rows = baselines.raw_onnxruntime(repository, name, s.texts, RAW_BATCHES, path=RowPath.RAW_ORT_INT8)
    with serving(repository) as endpoints:
        rows += [_served_closed_loop(s, endpoints, "grpc", c, RowPath.SERVED_INT8) for c in (8, 32)]
    s.log(f"served INT8: {', '.join(f'{r.setting} {r.seq_per_s:.1f}' for r in rows[-2:])} seq/s")
    gate = Deployments.of(repository, name).report.get("models", {}).get(name, {}).get("accuracy_gate", {})
    if gate:
        note = (f"INT8 accuracy gate at build: top-1 agreement {gate['top1_agreement']:.4f} with FP32 on "
                f"{gate['num_texts']} texts ({gate.get('top1_ties', 0)} ties within tie_margin "
                f"{gate['gate'].get('tie_margin', 0):g} excused; strict "
                f"{gate.get('top1_strict_agreement', gate['top1_agreement']):.4f}), "
                f"max probability difference {gate['max_prob_diff']:.4f}")
        if note not in result.notes:
            result.notes.append(note)
    return rows


# -- the run -----------------------------------------------------------------------------------


def _texts(config: BenchConfig) -> list[str]:
    from tritonize.loadtest.payload import corpus_texts

    pool = corpus_texts(config.corpus)
    return [pool[i % len(pool)] for i in range(config.n_texts)]


def _repo_dir(config: BenchConfig, variant: str) -> Path:
    """The cached repository of one variant: dynamic (as shipped), static (batching off), int8."""
    from tritonize.cache import default_cache_dir

    return default_cache_dir() / "bench" / config.demo / f"repo-{variant}"


def _session(config: BenchConfig, log: Log) -> Session:
    from tritonize.spec import load_spec

    spec = load_spec(config.spec)
    if config.repository is not None:
        repository = config.repository
    else:
        models = bench_models(spec, config.model)[: 1 if config.row_set == "overhead" else None]  # T5 is standard-only
        repository = ensure_repository(_repo_dir(config, "dynamic"), spec.select(models), config.demo, True, config.rebuild)
    deployments = Deployments.of(repository, config.model)
    static = int8 = None
    notes: tuple[str, ...] = ()
    if config.row_set != "overhead":
        static_spec = spec.select([deployments.classifier]) if deployments.classifier in _names(spec) else None
        if static_spec is None:
            log(f"no dynamic-batching-off or INT8 variant: {deployments.classifier} is not in {spec.source}")
        else:
            static = ensure_repository(_repo_dir(config, "static"), static_spec, config.demo, False, config.rebuild)
            int8, notes = _int8_repository(config, static_spec, log)
    return Session(
        config=config, repository=repository, static=static, int8=int8, deployments=deployments,
        texts=_texts(config), spec=spec, log=log, notes=notes,
    )  # fmt: skip


def _int8_repository(config: BenchConfig, spec: Any, log: Log) -> tuple[Path | None, tuple[str, ...]]:
    """The INT8 variant, or None and why: a build that fails its accuracy gate is a result to
    report (the INT8 rows are left out), not a reason to lose the rest of the bench."""
    from tritonize.errors import EngineBuildError, ValidationError

    try:
        return ensure_repository(_repo_dir(config, "int8"), _int8(spec), config.demo, True, config.rebuild), ()
    except (ValidationError, EngineBuildError) as exc:
        why = " ".join(str(exc).split())
        log(f"INT8 variant not built: {why}")
        return None, (f"INT8 rows: not measured, the INT8 build failed: {why}",)


def _int8(spec: Any) -> Any:
    """``spec`` with its deployments built in INT8 for the embedded target (dynamic quantization)."""
    from tritonize.spec import Precision, Target

    models = tuple(replace(m, precision={**m.precision, Target.EMBEDDED: Precision.INT8}) for m in spec.models)
    return replace(spec, models=models)


def _names(spec: Any) -> set[str]:
    return {m.name for m in spec.models}


def run_bench(config: BenchConfig, log: Log = print) -> BenchResult:
    """Measure the configured row sets; write ``bench.json`` and ``bench.md`` to ``config.out``.

    Repositories are built before anything is timed. With several passes every row keeps its
    best pass (:func:`~tritonize.bench.rows.best_rows`); all passes are kept in the JSON.

    Raises:
        BenchError: a repository file is missing. ServerError: a server did not start.
        ClientError: a served request failed.
    """
    session = _session(config, log)
    result = BenchResult(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
    result.config.update(
        n_texts=len(session.texts), passes=config.n_passes, cpus=os.cpu_count(), rows=config.row_set,
        client_processes=config.processes, deployment=session.deployments.classifier,
    )  # fmt: skip
    result.notes.append(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    result.notes += session.notes
    for index in range(config.n_passes):
        log(f"pass {index + 1}/{config.n_passes}")
        one = one_pass(session)
        result.all_rows += [replace(row, pass_index=index) for row in one.rows]
        result.notes += [note for note in one.notes if note not in result.notes]
    result.notes.append(f"load average at end: {os.getloadavg()[0]:.1f} (includes this benchmark's own processes)")
    result.rows = best_rows(result.all_rows)
    result.goals = evaluate_goals(result)
    write_result(result, config.out)
    return result
