"""compile(target): validated ONNX graphs -> the files each engine step serves.

* ``embedded`` / ``cpu`` in FP32: the ONNX graph itself (ONNX Runtime runs it); in INT8 its
  dynamically quantized copy (:mod:`tritonize.engines.quantize`).
* ``gpu``: per step, the plan's precision graph (:mod:`tritonize.engines.precision_graph`: FP16 /
  BF16 with its FP32 islands, from the FP32 export), then one strongly typed TensorRT engine
  built from it, with its ``build_info.json``; the graph goes along as the step's ONNX. An
  engine whose cache key (graph, TensorRT, compute capability, plan) matches the one already
  in the live repository is reused, not rebuilt. Where TensorRT is missing, the step is left
  *pending*: everything else is written and the build stops with one clear message.
* ``gpu`` rehearsed: the same precision graphs, no engines; ONNX Runtime stands in for each
  engine under its profiles (:func:`tritonize.engines.runners.ort_stand_in`) for the gate.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import logging
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.engines.build_info import BuildInfo, cache_key, file_sha256
from tritonize.engines.plan import EnginePlan
from tritonize.engines.precision_graph import write_precision_graph
from tritonize.engines.validate import Gate, Step, ort_step
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import GraphDecl
from tritonize.repository import layout
from tritonize.repository.artifacts import StepFiles
from tritonize.repository.report import AccuracyGate, EngineEntry, EngineStatus, GraphEntry
from tritonize.spec import ModelSpec, Precision, Target

log = logging.getLogger(__name__)

REHEARSAL_NOTE = (
    "rehearsal: ONNX Runtime on this CPU stood in for each engine, running the engine's own precision graph "
    "under its optimization profiles. No substitute for the real gate: TensorRT's kernels, fusions and "
    "tactics were not run; build on the serving GPU for that."
)


class CandidateKind(str, enum.Enum):
    """What the gate's candidate steps are."""

    ONNX = "onnx"  # INT8 graphs of the CPU targets, in ONNX Runtime
    TENSORRT = "tensorrt"  # engines
    REHEARSAL = "rehearsal"  # precision graphs in ONNX Runtime, under the engines' profiles


@dataclass(frozen=True, kw_only=True)
class Exported:
    """One validated ONNX graph and the Triton step it becomes."""

    step: str
    graph: GraphDecl
    onnx: Path


@dataclass(frozen=True, kw_only=True)
class CompileContext:
    """What a compile needs beyond the graphs: where to write, what to reuse."""

    model: ModelSpec
    target: Target
    workdir: Path
    plans: dict[str, EnginePlan] = field(default_factory=dict)  # by step; gpu target only
    previous: Path | None = None  # the live repository, for engine reuse
    timing_cache_dir: Path | None = None  # one cache file per TensorRT release and GPU architecture
    rehearse: bool = False


@dataclass(frozen=True, kw_only=True)
class Compiled:
    """The compiled steps, and the faster graphs the accuracy gate must compare with FP32.

    ``candidates`` (by component) are TensorRT engines, precision graphs (rehearsal) or INT8
    ONNX graphs (cpu targets), as ``kind`` says; empty when the step serves the FP32 export
    itself, or its engine is still pending.
    """

    steps: dict[str, StepFiles]  # by component
    candidates: dict[str, Path] = field(default_factory=dict)
    kind: CandidateKind = CandidateKind.ONNX
    engines: dict[str, EngineEntry] = field(default_factory=dict)  # by step: the report's engine entries
    pending: tuple[str, ...] = ()  # steps whose engines need TensorRT
    plans: dict[str, EnginePlan] = field(default_factory=dict)  # by component, resolved for the GPU used

    def gate(self, model: ModelSpec) -> Gate:
        """The accuracy gate: agreement always; for engines also the output tolerance of the
        loosest precision built (INT8 logits are gated through agreement and probabilities)."""
        tolerance = max((model.gate.engine_tolerance[p.precision.precision] for p in self.plans.values()), default=None)
        return Gate.of(model, tolerance)

    @contextmanager
    def candidate_steps(self) -> Iterator[dict[str, Step]]:
        """Step callables of the candidates, closed (TensorRT contexts, streams) on exit."""
        with ExitStack() as stack:
            if self.kind is CandidateKind.TENSORRT:
                from tritonize.engines.tensorrt_runner import tensorrt_step

                steps = {c: stack.enter_context(tensorrt_step(self.plans[c].step, p)) for c, p in self.candidates.items()}
            elif self.kind is CandidateKind.REHEARSAL:
                from tritonize.engines.runners import ort_stand_in

                steps = {}
                for c, path in self.candidates.items():
                    plan = self.plans[c]
                    steps[c] = stack.enter_context(ort_stand_in(plan.step, path, plan.precision.precision, plan.profiles))
            else:
                steps = {c: ort_step(path) for c, path in self.candidates.items()}
            yield steps

    def gate_entry(self, figures: AccuracyGate) -> AccuracyGate:
        """The gate's report entry: ``figures``, marked when they come from a rehearsal."""
        if self.kind is CandidateKind.REHEARSAL:
            return dataclasses.replace(figures, rehearsed=True, note=REHEARSAL_NOTE)
        return figures


def compile_graphs(context: CompileContext, exported: dict[str, Exported]) -> Compiled:
    """Compile every graph of one deployment for ``context.target``.

    Raises EngineBuildError: a precision the target cannot compile, or a failed engine build.
    """
    precision = context.model.engine.precision[context.target]
    if context.target is Target.GPU:
        return _compile_engines(context, exported)
    if precision is Precision.INT8:
        from tritonize.engines.quantize import quantize_int8

        quantized = {c: quantize_int8(e.onnx, context.workdir / e.step / layout.ONNX_FILE) for c, e in exported.items()}
        steps = {c: StepFiles(graph=e.graph, files={layout.ONNX_FILE: quantized[c]}) for c, e in exported.items()}
        return Compiled(steps=steps, candidates=quantized)
    if precision is not Precision.FP32:  # the spec refuses it already; a guard for programmatic specs
        raise EngineBuildError(f"{context.model.name}: {precision.value} is not built for the {context.target.value} target")
    steps = {c: StepFiles(graph=e.graph, files={layout.ONNX_FILE: e.onnx}) for c, e in exported.items()}
    return Compiled(steps=steps)


def _tensorrt_here() -> tuple[str | None, Any]:
    """(TensorRT version, first GPU) of this machine; None for what is missing."""
    from tritonize.engines import local
    from tritonize.engines.tensorrt_build import TensorRTUnavailable, import_tensorrt

    try:
        version = str(import_tensorrt().__version__)
    except TensorRTUnavailable:
        version = None
    return version, next(iter(local.gpus()), None)


def _compile_engines(context: CompileContext, exported: dict[str, Exported]) -> Compiled:
    trt_version, gpu = (None, None) if context.rehearse else _tensorrt_here()
    steps, candidates, engines, pending, resolved = {}, {}, {}, [], {}
    kind = CandidateKind.REHEARSAL if context.rehearse else CandidateKind.TENSORRT
    for component, item in exported.items():
        plan = context.plans[item.step]
        if gpu is not None:
            plan = plan.with_compute_capability(gpu.compute_capability)
        graph = write_precision_graph(item.onnx, plan.precision, context.workdir / item.step / layout.ONNX_FILE)
        files = {layout.ONNX_FILE: graph.path}
        graph_entry = GraphEntry.from_dict(graph.to_dict(), item.step)
        steps[component] = StepFiles(graph=item.graph, files=files)
        engine_entry = functools.partial(EngineEntry, plan=plan.to_dict(), graph=graph_entry)
        if context.rehearse:
            engines[item.step] = engine_entry(engine=EngineStatus.REHEARSED)
            candidates[component], resolved[component] = graph.path, plan
            continue
        if trt_version is None or gpu is None:
            pending.append(item.step)
            engines[item.step] = engine_entry(engine=EngineStatus.PENDING)
            continue
        graph_sha = file_sha256(graph.path)
        key = cache_key(graph_sha, trt_version, gpu.compute_capability, plan)
        engine, info_path = _reuse(context.previous, item.step, key, context.workdir / item.step)
        if engine is None:
            from tritonize.engines.tensorrt_build import build_engine, timing_cache_name

            engine = context.workdir / item.step / layout.PLAN_FILE
            cache = context.timing_cache_dir / timing_cache_name(trt_version, gpu.compute_capability)
            facts = build_engine(graph.path, plan, item.graph, engine, cache)
            info = BuildInfo(
                tensorrt_version=facts["tensorrt_version"],
                gpu_name=gpu.name,
                compute_capability=gpu.compute_capability,
                onnx_sha256=graph_sha,
                plan=plan,
                built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                build_seconds=facts["build_seconds"],
                fp32_layers=len(graph.fp32_nodes),
            )
            info_path = info.write(engine.parent / layout.BUILD_INFO_FILE)
            engines[item.step] = engine_entry(engine=EngineStatus.BUILT, build_info=info.to_dict(), settings=facts["settings"])
        else:
            log.info("%s: engine unchanged (cache key %s), reused", item.step, key[:12])
            engines[item.step] = engine_entry(engine=EngineStatus.REUSED, cache_key=key)
        files.update({layout.PLAN_FILE: engine, layout.BUILD_INFO_FILE: info_path})
        candidates[component], resolved[component] = engine, plan
    return Compiled(
        steps=steps, candidates=candidates, kind=kind, engines=engines, pending=tuple(pending), plans=resolved
    )


def _reuse(previous: Path | None, step: str, key: str, workdir: Path) -> tuple[Path | None, Path | None]:
    """A copy of the live repository's engine for ``step`` when its build info has ``key``."""
    if previous is None:
        return None, None
    version = previous / step / layout.VERSION
    info_path, engine = version / layout.BUILD_INFO_FILE, version / layout.PLAN_FILE
    if not (info_path.exists() and engine.exists()):
        return None, None
    try:
        if BuildInfo.read(info_path).cache_key != key:
            return None, None
    except EngineBuildError:
        return None, None
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(engine, workdir / layout.PLAN_FILE)), Path(
        shutil.copy2(info_path, workdir / layout.BUILD_INFO_FILE)
    )
