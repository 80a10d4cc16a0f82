"""Text classification: export -> validate -> compile(target) -> repository."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tritonize.engines.plan import EnginePlan
from tritonize.export.tensors import sequence_classification_graph
from tritonize.pipeline.checkpoints import load_config, resolve_labels, save_tokenizer_json, validation_texts
from tritonize.pipeline.compile import Compiled, Exported, compile_graphs
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.plans import gpu_plans
from tritonize.repository import layout
from tritonize.repository.artifacts import ClassificationArtifacts
from tritonize.repository.classification import write_classification
from tritonize.spec import ModelSpec, Target

log = logging.getLogger(__name__)


def plan_classification(model: ModelSpec, checkpoint: str, texts: list[str]) -> dict[str, EnginePlan]:
    from transformers import AutoTokenizer

    config = load_config(checkpoint)
    graph = sequence_classification_graph(len(resolve_labels(model, config)))
    step = layout.StepNames(model.name).model
    return gpu_plans(model, config, {step: graph}, AutoTokenizer.from_pretrained(checkpoint), texts)


def build_classification(model: ModelSpec, checkpoint: str, ws: Workspace) -> DeploymentBuild:
    """Export, validate against PyTorch, compile, validate engines, write the four models."""
    from tritonize.export.onnx_export import export_classifier
    from tritonize.export.validate import validate_classifier

    options = ws.options
    texts = validation_texts(options, model)
    labels = resolve_labels(model, load_config(checkpoint))
    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, ws.workdir / "tokenizer")
    onnx_path = ws.workdir / layout.ONNX_FILE
    log.info("%s: exporting %s to ONNX", model.name, checkpoint)
    graph = export_classifier(checkpoint, onnx_path)
    log.info("%s: validating ONNX against PyTorch", model.name)
    validation = validate_classifier(checkpoint, onnx_path, texts, model.gate.tolerance, name=model.name)
    step = layout.StepNames(model.name).model
    plans = plan_classification(model, checkpoint, texts) if options.target is Target.GPU else {}
    context = ws.compile_context(model, plans)
    compiled = compile_graphs(context, {"model": Exported(step=step, graph=graph, onnx=onnx_path)})
    entry: dict[str, Any] = {"labels": list(labels), "validation": validation}
    if compiled.report:
        entry["engines"] = compiled.report
    if compiled.candidates:
        entry["accuracy_gate"] = _gate(model, options.target, onnx_path, compiled, tokenizer_json, pad_id, texts)
    artifacts = ClassificationArtifacts(
        labels=labels, pad_token_id=pad_id, tokenizer_json=tokenizer_json, model=compiled.steps["model"]
    )
    configs = write_classification(ws.repository, model, options.target, artifacts, options.dynamic_batching)
    return DeploymentBuild.from_configs(entry, configs, ws.repository, compiled.pending)


def _gate(
    model: ModelSpec,
    target: Target,
    onnx_path: Path,
    compiled: Compiled,
    tokenizer_json: Path,
    pad_id: int,
    texts: list[str],
) -> dict[str, Any]:
    """The compiled graph (engine or INT8) against the FP32 ONNX on the validation texts."""
    from tritonize.engines.validate import ort_step, token_batches, validate_classifier_step

    log.info("%s: accuracy gate of the compiled model step against the FP32 ONNX", model.name)
    with compiled.candidate_steps() as candidates:
        figures = validate_classifier_step(
            f"{model.name} ({model.engine.precision[target].value})",
            ort_step(onnx_path),
            candidates["model"],
            token_batches(tokenizer_json, model, pad_id, texts),
            compiled.gate(model),
        )
    return compiled.gate_entry(figures)
