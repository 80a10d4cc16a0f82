"""Text classification: export -> validate -> compile(target) -> repository."""

from __future__ import annotations

import logging
from pathlib import Path

from tritonize.engines.plan import EnginePlan
from tritonize.engines.torch_runtime import build_torch_step, classifier_step, require_device, uses_torch
from tritonize.engines.validate import Gate, Step, ort_step, token_batches, validate_classifier_step
from tritonize.export.tensors import sequence_classification_graph
from tritonize.pipeline.checkpoints import load_config, resolve_labels, save_tokenizer_json, validation_texts
from tritonize.pipeline.compile import Exported, compile_graphs
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.plans import gpu_plans
from tritonize.repository import layout
from tritonize.repository.artifacts import ClassificationArtifacts, StepFiles, TorchStepFiles
from tritonize.repository.classification import write_classification
from tritonize.repository.report import ClassifierGate, TorchRuntime, Validation
from tritonize.spec import ModelSpec, Target

log = logging.getLogger(__name__)


def plan_classification(model: ModelSpec, checkpoint: str, texts: list[str]) -> dict[str, EnginePlan]:
    from transformers import AutoTokenizer

    config = load_config(checkpoint)
    graph = sequence_classification_graph(len(resolve_labels(model, config)))
    step = layout.StepNames(model.name).model
    return gpu_plans(model, config, {step: graph}, AutoTokenizer.from_pretrained(checkpoint), texts)


def build_classification(model: ModelSpec, checkpoint: str, ws: Workspace) -> DeploymentBuild:
    """Export, validate against PyTorch, compile, validate engines, write the four models.

    With an embedded torch runtime the model step is the checkpoint in PyTorch instead, gated
    against the FP32 ONNX export the same way.
    """
    from tritonize.export.onnx_export import export_classifier
    from tritonize.export.validate import validate_classifier

    options = ws.options
    torch_runtime = uses_torch(model, options.target)
    if torch_runtime:
        require_device(model.engine.embedded_runtime)  # before the export: no CUDA is known at once
    texts = validation_texts(options, model)
    config = load_config(checkpoint)
    labels = resolve_labels(model, config)
    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, ws.workdir / "tokenizer")
    onnx_path = ws.workdir / layout.ONNX_FILE
    log.info("%s: exporting %s to ONNX", model.name, checkpoint)
    graph = export_classifier(checkpoint, onnx_path)
    log.info("%s: validating ONNX against PyTorch", model.name)
    validation = Validation.from_dict(
        validate_classifier(checkpoint, onnx_path, texts, model.gate.tolerance, name=model.name), model.name
    )
    step = layout.StepNames(model.name).model
    if torch_runtime:
        built = build_torch_step(model, checkpoint, config, ws.workdir / "torch")
        batches = token_batches(tokenizer_json, model, pad_id, texts)
        gate = _gate(built.label(model), onnx_path, classifier_step(built, model, pad_id), built.gate(model), batches)
        torch_files = TorchStepFiles(files=built.files, parameters=built.parameters)
        artifacts = ClassificationArtifacts(
            labels=labels, pad_token_id=pad_id, tokenizer_json=tokenizer_json, model=StepFiles(graph=graph), torch=torch_files
        )
        configs = write_classification(ws.repository, model, options.target, artifacts, options.dynamic_batching)
        return DeploymentBuild(
            labels=tuple(labels), validation=validation, configs=tuple(configs),
            runtime=TorchRuntime.from_dict(built.report(), model.name), accuracy_gate=gate,
        )
    plans = plan_classification(model, checkpoint, texts) if options.target is Target.GPU else {}
    context = ws.compile_context(model, plans)
    compiled = compile_graphs(context, {"model": Exported(step=step, graph=graph, onnx=onnx_path)})
    gate = None
    if compiled.candidates:
        label = f"{model.name} ({model.engine.precision[options.target].value})"
        batches = token_batches(tokenizer_json, model, pad_id, texts)
        with compiled.candidate_steps() as candidates:
            figures = _gate(label, onnx_path, candidates["model"], compiled.gate(model), batches)
        gate = compiled.gate_entry(figures)
    artifacts = ClassificationArtifacts(
        labels=labels, pad_token_id=pad_id, tokenizer_json=tokenizer_json, model=compiled.steps["model"]
    )
    configs = write_classification(ws.repository, model, options.target, artifacts, options.dynamic_batching)
    return DeploymentBuild(
        labels=tuple(labels), validation=validation, configs=tuple(configs), engines=compiled.engines,
        accuracy_gate=gate, pending=compiled.pending,
    )


def _gate(name: str, onnx_path: Path, candidate: Step, gate: Gate, batches: list[dict]) -> ClassifierGate:
    """The compiled model step (engine, INT8 graph or PyTorch) against the FP32 ONNX on the validation texts."""
    log.info("%s: accuracy gate of the compiled model step against the FP32 ONNX", name)
    return ClassifierGate.from_dict(validate_classifier_step(name, ort_step(onnx_path), candidate, batches, gate), name)
