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

import tritonize.bench.baselines as baselines
import tritonize.bench.drivers as drivers
from tritonize.bench.baselines import BenchError
from tritonize.bench.cpu import measure
from tritonize.bench.goals import evaluate_goals
from tritonize.bench.gpu import GpuSampler
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
from tritonize.provenance import provenance
from tritonize.repository.report import REPORT_FILE, ClassifierGate, report_path
from tritonize.urls import PROTOCOLS

logger = logging.getLogger(__name__)

CONCURRENCY = (1, 8, 32)
TORCH_CONCURRENCY = (1, 8, 32, 128)  # the PyTorch runtime's rows: a GPU needs more in flight
RAW_TORCH_BATCHES = (1, 32, 256)
HALF_LOAD_TEXTS_PER_REQUEST = 32  # the torch rows' latency goal: 32-text requests at half their saturation
RAW_BATCHES = (8, 32)
HF_BATCHES = (1, 32)
TOKENIZER_BATCHES = (1, 32)
OVERHEAD_TEXTS_PER_REQUEST = (1, 32)
MIN_TOKENIZER_TEXTS = 1024  # the tokenizer alone takes microseconds per text: time enough of them
ROW_SETS = ("standard", "overhead", "all", "torch")
RUNTIMES = ("torch-cuda", "torch-cpu")

Log = Callable[[str], None]


# Options left unset take these (--quick, full run): texts, open-loop seconds, saturation seconds, passes.
RUN_SIZES: dict[str, tuple[float, float]] = {
    "texts": (48, 240),
    "half_load_s": (3.0, 15.0),
    "saturation_s": (2.0, 8.0),
    "passes": (1, 2),
}


class _RunSize:
    """A run size read from its option: the value given, or when unset its ``--quick`` / full-run
    default from :data:`RUN_SIZES` (one rule for every size, instead of one property each)."""

    def __init__(self, option: str) -> None:
        self.option = option

    def __get__(self, config: Any, owner: type | None = None) -> Any:
        if config is None:
            return self
        quick, full = RUN_SIZES[self.option]
        return getattr(config, self.option) or (quick if config.quick else full)


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to measure. ``repository`` + ``http_url``/``grpc_url`` reuse a running server.

    ``rows``: ``standard`` (served vs raw ONNX Runtime, HF, batching, latency, T5), ``overhead``
    (served at saturation vs the tokenizer alone) or ``all``; default ``all`` for the tiny demo
    (its engine is nearly free, so it shows the serving overhead) and ``standard`` for full.
    ``torch`` (the default with ``runtime``): the PyTorch runtime's rows (served at concurrency
    1-128 and at saturation, 32-text requests at half load, raw PyTorch with and without CUDA
    graphs, the HF pipeline and ``generate`` on the same device, GPU utilisation and memory).

    ``runtime`` (``torch-cuda`` / ``torch-cpu``): build the spec's deployments with that
    ``embedded_runtime`` (in their gpu precision on CUDA, FP32 on the CPU), with
    ``python_instances`` model instances when given.
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
    inference_key: str | None = None  # of a running server that puts inference behind a key
    metrics_url: str | None = None  # a running server's Prometheus endpoint (GPU utilisation and memory)
    rebuild: bool = False
    hf: bool = True
    passes: int | None = None  # whole-bench repetitions; each row keeps its best pass (default 2, quick 1)
    rows: str | None = None
    client_processes: int | None = None  # saturation load generators (default: half the cores)
    spec: Path | None = None
    model: str | None = None  # the classification deployment (default: the first one built)
    runtime: str | None = None  # build the deployments with this embedded_runtime (torch rows)
    python_instances: int | None = None  # with runtime: instances of the torch step
    compare: Path | None = None  # another build of the deployment: its served and saturation rows too

    def __post_init__(self) -> None:
        if self.demo not in SIZES:
            raise BenchError(f"--demo must be one of {SIZES}, got {self.demo!r}")
        if (self.http_url or self.grpc_url) and not (self.http_url and self.grpc_url and self.repository):
            raise BenchError("a running server needs repository, http_url and grpc_url together")
        if self.rows is not None and self.rows not in ROW_SETS:
            raise BenchError(f"--rows must be one of {ROW_SETS}, got {self.rows!r}")
        if self.compare is not None and not report_path(self.compare).is_file():
            raise BenchError(f"--compare {self.compare} is not a built repository (no {REPORT_FILE})")
        if self.client_processes is not None and self.client_processes < 1:
            raise BenchError(f"--client-processes must be >= 1, got {self.client_processes}")
        if self.runtime is not None and self.runtime not in RUNTIMES:
            raise BenchError(f"--runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if self.python_instances is not None and (self.runtime is None or self.python_instances < 1):
            raise BenchError("--python-instances sets the torch step's instances: use it with --runtime, >= 1")
        if self.runtime is not None and self.repository is not None:
            raise BenchError("--runtime builds the repository it measures: leave out --repository")

    n_texts = _RunSize("texts")
    open_loop_s = _RunSize("half_load_s")
    saturation_seconds = _RunSize("saturation_s")
    n_passes = _RunSize("passes")

    @property
    def row_set(self) -> str:
        if self.rows:
            return self.rows
        if self.runtime:
            return "torch"
        return "all" if self.demo == "tiny" else "standard"

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
    work = lambda: asyncio.run(  # noqa: E731
        drivers.closed_loop(url, protocol, s.deployments.classifier, s.texts, concurrency, endpoints.inference_key)
    )
    return measure(key, len(s.texts), work, deployment=s.deployments.classifier)


def measure_served(
    s: Session, endpoints: Endpoints, path: RowPath = RowPath.SERVED, levels: tuple[int, ...] = CONCURRENCY
) -> list[Measurement]:
    rows = []
    for protocol in PROTOCOLS:
        for concurrency in levels:
            rows.append(_served_closed_loop(s, endpoints, protocol, concurrency, path))
            s.log(f"{rows[-1].path} {rows[-1].setting}: {rows[-1].seq_per_s:.1f} seq/s, p50 {rows[-1].p50_ms:.1f} ms")
    best = max((r for r in rows if r.key.protocol == "grpc"), key=lambda r: r.seq_per_s)
    rate, duration = best.seq_per_s / 2, s.config.open_loop_s
    key = RowKey(path=path, load=Load.OPEN_LOOP, protocol="grpc")
    refused: list[int] = []
    work = lambda: asyncio.run(  # noqa: E731
        drivers.open_loop(
            endpoints.grpc_url,
            "grpc",
            s.deployments.classifier,
            s.texts,
            rate,
            duration,
            refused=refused,
            inference_key=endpoints.inference_key,
        )
    )
    rows.append(measure(key, None, work, rate=rate, deployment=s.deployments.classifier))
    rows[-1] = replace(rows[-1], refused=sum(refused))
    s.log(f"{rows[-1].path} {rows[-1].setting}: p50 {rows[-1].p50_ms:.1f} ms, p99 {rows[-1].p99_ms:.1f} ms")
    return rows


def measure_saturation(s: Session, endpoints: Endpoints, path: RowPath = RowPath.SERVED) -> list[Measurement]:
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
                inference_key=endpoints.inference_key,
            )
            before = step_statistics(endpoints)
            with GpuSampler(endpoints.metrics_url) as gpu:
                seconds, latencies, done, share = drivers.saturate(run, s.texts)
            server = statistics_delta(before, step_statistics(endpoints)) if before else {}
            key = RowKey(
                path=path, load=Load.SATURATION, level=run.processes * run.in_flight,
                protocol=protocol, texts_per_request=per_request,
            )  # fmt: skip
            row = Measurement(
                key=key, texts=done, seconds=seconds, cpu_share=share, server=server, gpu=gpu.summary(),
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
            drivers.generate_closed_loop(endpoints.grpc_url, name, s.texts, c, max_new_tokens, endpoints.inference_key)
        )
        rows.append(measure(key, len(s.texts), work, deployment=name))
        s.log(f"T5 {name} {rows[-1].setting}: served {rows[-1].seq_per_s:.1f} seq/s")
    checkpoint = s.deployments.checkpoint(name)
    if checkpoint:
        placement = baselines.Placement.of(s.deployments.entry(name))
        generated = baselines.hf_generate(checkpoint, s.texts, max_new_tokens, (1, 32), placement)
        rows += [replace(r, deployment=name) for r in generated]
    return rows


def _max_new_tokens(s: Session, name: str) -> int:
    try:
        return s.spec.get(name).generation.max_new_tokens
    except (KeyError, ValueError):  # a repository built from another spec: the entry model's own default
        from tritonize.bench.baselines import step_parameters

        return int(step_parameters(s.repository, name).get("max_new_tokens", "1"))


# -- one pass ----------------------------------------------------------------------------------


def _endpoints(s: Session) -> Any:
    """The server to measure: one someone else started, or the session repository served here."""
    config = s.config
    if config.grpc_url:
        running = Endpoints(
            http_url=str(config.http_url),
            grpc_url=str(config.grpc_url),
            admin_key=config.admin_key,
            inference_key=config.inference_key,
            metrics_url=config.metrics_url,
        )
        return contextlib.nullcontext(running)
    return serving(s.repository)


def _served_pass(s: Session, result: BenchResult) -> None:
    config = s.config
    standard, overhead = config.row_set in ("standard", "all"), config.row_set in ("overhead", "all")
    compared = config.compare is not None  # a comparison needs both row kinds of both builds
    with _endpoints(s) as endpoints:
        if standard or compared:
            result.rows += measure_served(s, endpoints)
        if overhead or compared:
            result.rows += measure_saturation(s, endpoints)
        if standard:
            result.rows += measure_t5(s, endpoints, result)
    if config.compare is not None:  # the other build right after, in the same pass, on the same texts
        with serving(config.compare) as endpoints:
            result.rows += measure_served(s, endpoints, RowPath.SERVED_COMPARED)
            result.rows += measure_saturation(s, endpoints, RowPath.SERVED_COMPARED)


def measure_half_load(s: Session, endpoints: Endpoints, saturation: list[Measurement]) -> Measurement | None:
    """32-text requests over gRPC at half the best 32-text saturation throughput (open loop): the
    latency a server sized for twice its load gives."""
    per_request = HALF_LOAD_TEXTS_PER_REQUEST
    best = max((r for r in saturation if r.key.texts_per_request == per_request), key=lambda r: r.seq_per_s, default=None)
    if best is None or not best.seq_per_s:
        return None
    rate = best.seq_per_s / per_request / 2
    key = RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc", texts_per_request=per_request)
    refused: list[int] = []
    work = lambda: asyncio.run(  # noqa: E731
        drivers.open_loop(
            endpoints.grpc_url, "grpc", s.deployments.classifier, s.texts, rate, s.config.open_loop_s, per_request, refused
        )
    )
    row = measure(key, None, work, rate=rate, deployment=s.deployments.classifier)
    # latencies count answered requests; throughput counts their texts
    row = replace(row, texts=row.texts * per_request, refused=sum(refused))
    s.log(f"{row.path} {row.setting}, {per_request} texts/request: p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms")
    return row


def torch_pass(s: Session) -> BenchResult:
    """The PyTorch runtime's rows (see :class:`BenchConfig`)."""
    result = BenchResult(config={})
    name = s.deployments.classifier
    with _endpoints(s) as endpoints:
        result.rows += measure_served(s, endpoints, levels=TORCH_CONCURRENCY)
        saturation = measure_saturation(s, endpoints)
        result.rows += saturation
        half = measure_half_load(s, endpoints, saturation)
        result.rows += [half] if half else []
        result.rows += measure_t5(s, endpoints, result)
        if not endpoints.metrics_url:
            result.notes.append("GPU utilisation and memory: not read (no metrics URL for a server started elsewhere)")
    if endpoints.metrics_url and not any(r.gpu for r in saturation):
        result.notes.append("GPU utilisation and memory: the server exported no nv_gpu_* metrics (no GPU, or no DCGM)")
    result.rows += baselines.raw_torch(s.repository, name, s.texts, RAW_TORCH_BATCHES)
    best = max((r for r in result.rows if r.key.path in (RowPath.RAW_TORCH, RowPath.RAW_TORCH_GRAPHS)), key=lambda r: r.seq_per_s)
    s.log(f"raw PyTorch best: {best.path} {best.setting} {best.seq_per_s:.1f} seq/s")
    if not any(r.key.path is RowPath.RAW_TORCH_GRAPHS for r in result.rows):
        result.notes.append("raw PyTorch + CUDA graphs: not measured, the step runs on the CPU")
    checkpoint = s.deployments.checkpoint(name)
    if s.config.hf and checkpoint:
        placement = baselines.Placement.of(s.deployments.entry(name))
        result.rows += baselines.hf_pipeline(checkpoint, s.texts, HF_BATCHES, placement)
        result.notes.append(f"HF pipeline: on {placement.device} in {placement.precision}, as the classifier is served")
    return result


def one_pass(s: Session) -> BenchResult:
    if s.config.row_set == "torch":
        return torch_pass(s)
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
        reason = "--no-hf" if not s.config.hf else f"no checkpoint in {REPORT_FILE}"
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
    entry = Deployments.of(repository, name).entry(name)
    gate = entry.accuracy_gate if entry else None
    if isinstance(gate, ClassifierGate):
        note = (f"INT8 accuracy gate at build: top-1 agreement {gate.top1_agreement:.4f} with FP32 on "
                f"{gate.num_texts} texts ({gate.top1_ties} ties within tie_margin "
                f"{gate.gate.tie_margin:g} excused; strict {gate.top1_strict_agreement:.4f}), "
                f"max probability difference {gate.max_prob_diff:.4f}")
        if note not in result.notes:
            result.notes.append(note)
    return rows


# -- the run -----------------------------------------------------------------------------------


def _texts(config: BenchConfig) -> list[str]:
    from tritonize.loadtest.payload import corpus_texts

    pool = corpus_texts(config.corpus)
    return [pool[i % len(pool)] for i in range(config.n_texts)]


def _repo_dir(config: BenchConfig, variant: str) -> Path:
    """The cached repository of one variant: dynamic (as shipped), static (batching off), int8, or
    a torch runtime's."""
    from tritonize.cache import default_cache_dir

    return default_cache_dir() / "bench" / config.demo / f"repo-{variant}"


def _session(config: BenchConfig, log: Log) -> Session:
    from tritonize.spec import load_spec

    spec = load_spec(config.spec)
    if config.runtime:
        spec = _with_runtime(spec, config.runtime, config.python_instances)
    if config.repository is not None:
        repository = config.repository
    else:
        models = bench_models(spec, config.model)[: 1 if config.row_set == "overhead" else None]  # T5 is standard-only
        variant = config.runtime or "dynamic"
        repository = ensure_repository(_repo_dir(config, variant), spec.select(models), config.demo, True, config.rebuild)
    deployments = Deployments.of(repository, config.model)
    static = int8 = None
    notes: tuple[str, ...] = ()
    if config.row_set not in ("overhead", "torch"):
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

    models = tuple(m.replace(precision={**m.engine.precision, Target.EMBEDDED: Precision.INT8}) for m in spec.models)
    return replace(spec, models=models)


def _with_runtime(spec: Any, runtime: str, python_instances: int | None) -> Any:
    """``spec`` with every deployment on the embedded ``runtime``: on CUDA in the precision it asks
    of the gpu target (what a GPU runs it in), on the CPU in FP32; classifiers fused."""
    from tritonize.spec import Precision, Runtime, Target

    chosen = Runtime(runtime)

    def variant(model: Any) -> Any:
        precision = model.engine.precision[Target.GPU] if chosen is Runtime.TORCH_CUDA else Precision.FP32
        extra = {"python_instances": python_instances} if python_instances else {}
        return model.replace(
            embedded_runtime=chosen,
            precision={**model.engine.precision, Target.EMBEDDED: precision},
            fuse_steps=True,
            **extra,
        )

    return replace(spec, models=tuple(variant(m) for m in spec.models))


def _names(spec: Any) -> set[str]:
    return {m.name for m in spec.models}


def run_bench(config: BenchConfig, log: Log = print, command: str | None = None) -> BenchResult:
    """Measure the configured row sets; write ``bench.json`` and ``bench.md`` to ``config.out``.

    ``command`` is the command line as typed, kept in the JSON with the date, machine and commit
    (read before measuring: the code that ran) so published figures carry their provenance.

    Repositories are built before anything is timed. With several passes every row keeps its
    best pass (:func:`~tritonize.bench.rows.best_rows`); all passes are kept in the JSON.

    Raises:
        BenchError: a repository file is missing. ServerError: a server did not start.
        ClientError: a served request failed.
    """
    started = provenance(command)
    session = _session(config, log)
    result = BenchResult(provenance=started, config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
    result.config.update(
        n_texts=len(session.texts), passes=config.n_passes, cpus=os.cpu_count(), rows=config.row_set,
        client_processes=config.processes, deployment=session.deployments.classifier,
        served_repository=str(session.repository),
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
