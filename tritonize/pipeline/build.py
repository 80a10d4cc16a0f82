"""``tritonize build``: every deployment goes export -> validate -> compile(target) -> repository.

One task-specific builder per task (:mod:`tritonize.pipeline.classification`,
:mod:`tritonize.pipeline.text2text`); this module stages, runs them in spec order, merges the
build report and swaps the result in (:mod:`tritonize.pipeline.staging`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from tritonize.engines.plan import EnginePlan
from tritonize.engines.tensorrt_build import TIMING_CACHE_PATTERN
from tritonize.errors import EngineBuildError, RepositoryError
from tritonize.pipeline.checkpoints import resolve_checkpoint, validation_texts
from tritonize.pipeline.classification import build_classification, plan_classification
from tritonize.pipeline.compile import REHEARSAL_NOTE
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.options import BuildOptions
from tritonize.pipeline.staging import Staging
from tritonize.pipeline.text2text import build_text2text, plan_text2text
from tritonize.repository import layout
from tritonize.repository.report import BuildReport, ReportError, read_report_if_present
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


def _previous_report(options: BuildOptions) -> BuildReport | None:
    """The live repository's report. A partial build merges into it, so it must be readable
    (ReportError otherwise); a full build replaces it, so an unreadable one is only logged."""
    try:
        return read_report_if_present(options.out)
    except ReportError as exc:
        if options.only:
            raise ReportError(f"{exc}; a partial build (--model) merges into it: rebuild every deployment") from None
        log.warning("ignoring the previous build report: %s", exc)
        return None


def _base_report(options: BuildOptions, previous: BuildReport | None) -> BuildReport:
    if options.only and previous is not None and previous.target is not options.target:
        raise RepositoryError(
            f"{options.out} was built for target {previous.target.value!r}; rebuilding only {list(options.only)} "
            f"for {options.target.value!r} would mix targets: rebuild every deployment (omit --model)"
        )
    return BuildReport.create(
        spec=options.spec.source,
        target=options.target,
        demo=options.demo,
        dynamic_batching=options.dynamic_batching,
        rehearsal=REHEARSAL_NOTE if options.rehearse else None,
        models=dict(previous.models) if options.only and previous else {},
    )


def _owned_models(model: ModelSpec, previous: BuildReport | None) -> list[str]:
    """Model directories of ``model`` to clear before it is rebuilt: those its previous build
    wrote (from the report) and those this build writes, all by exact name."""
    names = layout.StepNames(model.name)
    current = [model.name, names.tokenizer, names.model, names.postprocess]
    current += [names.component(c) for c in ("encoder", "decoder", "decoder_with_past")]
    entry = previous.models.get(model.name) if previous else None
    earlier = entry.models if entry else ()
    return list(dict.fromkeys([*earlier, *current]))


def build(options: BuildOptions) -> BuildReport:
    """Build the selected deployments into ``options.out``; returns (and writes) the report.

    Raises:
        TritonizeError subclasses from any stage; the live repository is then left untouched.
        EnginesPending: after writing a gpu repository whose engines could not be built here.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars drown the build log
    previous = _previous_report(options)
    report = _base_report(options, previous)
    entries = dict(report.models)
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
            entries[model.name] = built.entry(model, checkpoint, demo, staging.path)
            pending += built.pending
            log.info("%s: built", model.name)
        report = report.with_models(entries)
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
