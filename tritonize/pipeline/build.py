"""``tritonize build``: every deployment goes export -> validate -> compile(target) -> repository.

One task-specific builder per task (:mod:`tritonize.pipeline.classification`,
:mod:`tritonize.pipeline.text2text`); this module stages, runs them in spec order, merges the
build report and swaps the result in (:mod:`tritonize.pipeline.staging`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tritonize import __version__
from tritonize.engines.plan import EnginePlan
from tritonize.engines.tensorrt_build import TIMING_CACHE_PATTERN
from tritonize.errors import EngineBuildError, RepositoryError
from tritonize.pipeline.checkpoints import resolve_checkpoint, validation_texts
from tritonize.pipeline.classification import build_classification, plan_classification
from tritonize.pipeline.compile import REHEARSAL_NOTE
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.options import BuildOptions
from tritonize.pipeline.staging import Staging, read_report
from tritonize.pipeline.text2text import build_text2text, plan_text2text
from tritonize.repository import layout
from tritonize.spec import ModelSpec, Task

log = logging.getLogger(__name__)

BUILDERS: dict[Task, Callable[[ModelSpec, str, Workspace], DeploymentBuild]] = {
    Task.TEXT_CLASSIFICATION: build_classification,
    Task.TEXT2TEXT_GENERATION: build_text2text,
}
PLANNERS: dict[Task, Callable[[ModelSpec, str, list[str]], dict[str, EnginePlan]]] = {
    Task.TEXT_CLASSIFICATION: plan_classification,
    Task.TEXT2TEXT_GENERATION: plan_text2text,
}


class EnginesPending(EngineBuildError):
    """The gpu repository was written, but its engines need TensorRT and a GPU to be built."""


def _base_report(options: BuildOptions, previous: dict[str, Any] | None) -> dict[str, Any]:
    if options.only and previous is not None and previous.get("target") != options.target.value:
        raise RepositoryError(
            f"{options.out} was built for target {previous.get('target')!r}; rebuilding only {list(options.only)} "
            f"for {options.target.value!r} would mix targets: rebuild every deployment (omit --model)"
        )
    return {
        "tritonize_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": options.spec.source,
        "target": options.target.value,
        "demo": options.demo,
        "dynamic_batching": options.dynamic_batching,
        **({"rehearsal": REHEARSAL_NOTE} if options.rehearse else {}),
        "models": dict(previous.get("models", {})) if options.only and previous else {},
    }


def _owned_models(model: ModelSpec, previous: dict[str, Any] | None) -> list[str]:
    """Model directories of ``model`` to clear before it is rebuilt: those its previous build
    wrote (from the report) and those this build writes, all by exact name."""
    names = layout.StepNames(model.name)
    current = [model.name, names.tokenizer, names.model, names.postprocess]
    current += [names.component(c) for c in ("encoder", "decoder", "decoder_with_past")]
    earlier = (previous or {}).get("models", {}).get(model.name, {}).get("models", [])
    return list(dict.fromkeys([*earlier, *current]))


def build(options: BuildOptions) -> dict[str, Any]:
    """Build the selected deployments into ``options.out``; returns (and writes) the report.

    Raises:
        TritonizeError subclasses from any stage; the live repository is then left untouched.
        EnginesPending: after writing a gpu repository whose engines could not be built here.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars drown the build log
    previous = read_report(options.out)
    report = _base_report(options, previous)
    staging = Staging(options.out, merge=bool(options.only))
    pending: list[str] = []
    staging.begin(keep_files=(TIMING_CACHE_PATTERN,))
    try:
        for model in options.selected.models:
            staging.remove_models(_owned_models(model, previous))
            checkpoint, demo = resolve_checkpoint(model, options)
            with tempfile.TemporaryDirectory(prefix=f"tritonize-{model.name}-") as tmp:
                ws = Workspace(options=options, workdir=Path(tmp), repository=staging.path,
                               previous=options.out if options.out.is_dir() else None)
                built = BUILDERS[model.task](model, checkpoint, ws)
            entry = {"task": model.task.value, "seed_checkpoint": model.checkpoint, "checkpoint": checkpoint,
                     "demo": demo, **built.entry}
            report["models"][model.name] = entry
            pending += built.pending
            log.info("%s: built", model.name)
        staging.commit(report)
    except BaseException:
        staging.abort()
        raise
    if pending:
        raise EnginesPending(
            f"TensorRT is not available here: wrote the ONNX graphs, the gpu configs and the engine plans to "
            f"{options.out} (engines pending: {', '.join(pending)}). Engines are built where TensorRT runs, on the "
            "GPU that will serve them: run the same build in the TensorRT image of the pinned NGC release "
            "(`docker compose run --rm build`, see README 'Deploy on a GPU server')."
        )
    return report


def plan(options: BuildOptions) -> dict[str, dict[str, EnginePlan]]:
    """The gpu target's engine plans per deployment, without exporting anything."""
    plans = {}
    for model in options.selected.models:
        checkpoint, _ = resolve_checkpoint(model, options)
        plans[model.name] = PLANNERS[model.task](model, checkpoint, validation_texts(options, model))
    return plans
