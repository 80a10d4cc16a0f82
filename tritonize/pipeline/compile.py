"""compile(target): validated ONNX graphs -> the files each engine step serves.

* ``embedded`` / ``cpu`` in FP32: the ONNX graph itself (ONNX Runtime runs it); in INT8 its
  dynamically quantized copy (:mod:`tritonize.engines.quantize`).
* ``gpu``: one TensorRT engine per step, from the plan (profiles + precision), with its
  ``build_info.json``; the ONNX goes along so the engine can be rebuilt on the serving GPU.
  An engine whose cache key (ONNX, TensorRT, compute capability, plan) matches the one already
  in the live repository is reused, not rebuilt. Where TensorRT is missing, the step is left
  *pending*: everything else is written and the build stops with one clear message.
"""

from __future__ import annotations

import datetime as _dt
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.engines.build_info import BuildInfo, cache_key, file_sha256
from tritonize.engines.plan import EnginePlan
from tritonize.engines.validate import Gate, Step, ort_step
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import GraphDecl
from tritonize.repository import layout
from tritonize.repository.artifacts import StepFiles
from tritonize.spec import ModelSpec, Precision, Target

log = logging.getLogger(__name__)

TIMING_CACHE_FILE = "tensorrt_timing.cache"  # at the repository root, beside the engines it served


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
    timing_cache: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Compiled:
    """The compiled steps, and the faster graphs the accuracy gate must compare with FP32.

    ``candidates`` (by component) are TensorRT engines (gpu) or INT8 ONNX graphs (cpu targets);
    empty when the step serves the FP32 export itself, or its engine is still pending.
    """

    steps: dict[str, StepFiles]  # by component
    candidates: dict[str, Path] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # by step: plan, build info or pending
    pending: tuple[str, ...] = ()  # steps whose engines need TensorRT
    plans: dict[str, EnginePlan] = field(default_factory=dict)  # by component, resolved for the GPU used

    def gate(self, model: ModelSpec) -> Gate:
        """The accuracy gate: agreement always; for engines also the output tolerance of the
        loosest precision built (INT8 logits are gated through agreement and probabilities)."""
        tolerance = max((model.engine_tolerance[p.precision.precision] for p in self.plans.values()), default=None)
        return Gate.of(model, tolerance)

    def candidate_steps(self) -> dict[str, Step]:
        """Step callables of the candidates: TensorRT runners (gpu) or ONNX Runtime sessions."""
        if self.plans:
            from tritonize.engines.runtime import EngineRunner

            return {c: EngineRunner(path) for c, path in self.candidates.items()}
        return {c: ort_step(path) for c, path in self.candidates.items()}


def compile_graphs(context: CompileContext, exported: dict[str, Exported]) -> Compiled:
    """Compile every graph of one deployment for ``context.target``.

    Raises EngineBuildError: a precision the target cannot compile, or a failed engine build.
    """
    precision = context.model.precision[context.target]
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


def _compile_engines(context: CompileContext, exported: dict[str, Exported]) -> Compiled:
    from tritonize.engines import local
    from tritonize.engines.tensorrt_build import TensorRTUnavailable, build_engine, import_tensorrt

    try:
        trt_version = str(import_tensorrt().__version__)
    except TensorRTUnavailable:
        trt_version = None
    gpu = next(iter(local.gpus()), None)
    steps, engines, report, pending, resolved = {}, {}, {}, [], {}
    for component, item in exported.items():
        plan = context.plans[item.step]
        files = {layout.ONNX_FILE: item.onnx}
        if trt_version is None or gpu is None:
            pending.append(item.step)
            report[item.step] = {"plan": plan.to_dict(), "engine": "pending: needs TensorRT and an NVIDIA GPU"}
            steps[component] = StepFiles(graph=item.graph, files=files)
            continue
        plan = plan.with_compute_capability(gpu.compute_capability)
        onnx_sha = file_sha256(item.onnx)
        key = cache_key(onnx_sha, trt_version, gpu.compute_capability, plan)
        engine, info_path = _reuse(context.previous, item.step, key, context.workdir / item.step)
        if engine is None:
            engine = context.workdir / item.step / layout.PLAN_FILE
            facts = build_engine(item.onnx, plan, item.graph, engine, context.timing_cache, island_nodes(item.onnx, plan))
            info = BuildInfo(
                tensorrt_version=facts["tensorrt_version"],
                gpu_name=gpu.name,
                compute_capability=gpu.compute_capability,
                onnx_sha256=onnx_sha,
                plan=plan,
                built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                build_seconds=facts["build_seconds"],
                fp32_layers=facts["fp32_layers"],
            )
            info_path = info.write(engine.parent / layout.BUILD_INFO_FILE)
            report[item.step] = {"plan": plan.to_dict(), "engine": "built", "build_info": info.to_dict()}
        else:
            log.info("%s: engine unchanged (cache key %s), reused", item.step, key[:12])
            report[item.step] = {"plan": plan.to_dict(), "engine": "reused", "cache_key": key}
        files.update({layout.PLAN_FILE: engine, layout.BUILD_INFO_FILE: info_path})
        steps[component] = StepFiles(graph=item.graph, files=files)
        engines[component] = engine
        resolved[component] = plan
    return Compiled(steps=steps, candidates=engines, report=report, pending=tuple(pending), plans=resolved)


def island_nodes(onnx_path: Path, plan: EnginePlan) -> list[str]:
    """The ONNX node names ``plan`` keeps in FP32 (empty when it keeps none)."""
    if not plan.precision.keep_fp32:
        return []
    import onnx

    from tritonize.engines.precision import fp32_nodes

    found = fp32_nodes(onnx.load(str(onnx_path), load_external_data=False), plan.precision.keep_fp32)
    return [name for names in found.values() for name in names]


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
