"""The text-classification deployment: ensemble(tokenizer -> model -> postprocess).

Contract (what clients rely on): input ``TEXT`` TYPE_STRING [1]; outputs ``LABEL`` TYPE_STRING
[1], ``SCORE`` TYPE_FP32 [1], ``PROBABILITIES`` TYPE_FP32 [num_labels] whose
``label_filename`` serves Triton's classification extension (``class_count``); verified on
tritonserver 2.51 to work on an ensemble output.
"""

from __future__ import annotations

from pathlib import Path

from tritonize.export.tensors import sequence_classification_graph
from tritonize.repository import layout, steps
from tritonize.repository.artifacts import ClassificationArtifacts
from tritonize.repository.triton_config import (
    EnsembleStep,
    TritonModelConfig,
    check_ensemble,
    write_config,
)
from tritonize.spec import ModelSpec, Target


def classification_configs(
    model: ModelSpec, target: Target, num_labels: int, pad_token_id: int, dynamic_batching: bool = True
) -> list[TritonModelConfig]:
    """Every config of the deployment, ensemble first. Raises RepositoryError if miswired."""
    if is_fused(model, target):
        return steps.with_queue_policy(model, fused_configs(model, num_labels, pad_token_id, dynamic_batching))
    names = layout.StepNames(model.name)
    graph = sequence_classification_graph(num_labels)
    tokenizer = steps.tokenizer_step(model, names.tokenizer, target, pad_token_id, dynamic_batching)
    engine = steps.engine_step(model, names.model, graph, target, dynamic_batching)
    post = steps.postprocess_step(model, names.postprocess, num_labels, dynamic_batching)
    ensemble = TritonModelConfig(
        name=model.name,
        platform="ensemble",
        max_batch_size=model.max_batch_size,
        inputs=(steps.TEXT_INPUT,),
        outputs=steps.classification_outputs(num_labels, label_filename=layout.LABELS_FILE),
        ensemble_steps=(
            EnsembleStep(
                model_name=names.tokenizer,
                input_map={"TEXT": "TEXT"},
                output_map={"input_ids": "input_ids", "attention_mask": "attention_mask"},
            ),
            EnsembleStep(
                model_name=names.model,
                input_map={"input_ids": "input_ids", "attention_mask": "attention_mask"},
                output_map={"logits": "logits"},
            ),
            EnsembleStep(
                model_name=names.postprocess,
                input_map={"logits": "logits"},
                output_map={"LABEL": "LABEL", "SCORE": "SCORE", "PROBABILITIES": "PROBABILITIES"},
            ),
        ),
    )
    check_ensemble(ensemble, {c.name: c for c in (tokenizer, engine, post)})
    return steps.with_queue_policy(model, [ensemble, tokenizer, engine, post])


def is_fused(model: ModelSpec, target: Target) -> bool:
    """Only the embedded target fuses; cpu and gpu keep their separate engine step."""
    return model.fuse_steps and target is Target.EMBEDDED


def fused_configs(model: ModelSpec, num_labels: int, pad_token_id: int, dynamic_batching: bool) -> list[TritonModelConfig]:
    """The ensemble (the same contract) over one fused step named like the model step."""
    names = layout.StepNames(model.name)
    fused = steps.fused_step(model, names.model, num_labels, pad_token_id, dynamic_batching)
    outputs = {t.name: t.name for t in fused.outputs}
    ensemble = TritonModelConfig(
        name=model.name,
        platform="ensemble",
        max_batch_size=model.max_batch_size,
        inputs=(steps.TEXT_INPUT,),
        outputs=steps.classification_outputs(num_labels, label_filename=layout.LABELS_FILE),
        ensemble_steps=(EnsembleStep(model_name=names.model, input_map={"TEXT": "TEXT"}, output_map=outputs),),
    )
    check_ensemble(ensemble, {fused.name: fused})
    return [ensemble, fused]


def _write_fused(repository: Path, model: ModelSpec, artifacts: ClassificationArtifacts) -> None:
    names = layout.StepNames(model.name)
    helpers = ("tokenize_step", "onnx_runner", "postprocess_step")
    entry = layout.install_python_model(repository, names.model, "fused_classifier", helpers=helpers)
    layout.copy_file(artifacts.tokenizer_json, entry.parent, layout.TOKENIZER_FILE)
    layout.write_labels(repository / names.model, artifacts.labels)
    for name, src in artifacts.model.files.items():
        layout.copy_file(src, entry.parent, name)


def write_classification(
    repository: Path,
    model: ModelSpec,
    target: Target,
    artifacts: ClassificationArtifacts,
    dynamic_batching: bool = True,
) -> list[Path]:
    """Write the deployment's model directories (four, or two when fused); returns the config paths."""
    names = layout.StepNames(model.name)
    configs = classification_configs(model, target, len(artifacts.labels), artifacts.pad_token_id, dynamic_batching)
    written = [write_config(c, repository) for c in configs]
    layout.write_labels(repository / model.name, artifacts.labels)
    if is_fused(model, target):
        _write_fused(repository, model, artifacts)
        return written
    layout.write_labels(repository / names.postprocess, artifacts.labels)
    layout.install_python_model(repository, names.tokenizer, "tokenize_step")
    layout.copy_file(artifacts.tokenizer_json, layout.version_dir(repository, names.tokenizer), layout.TOKENIZER_FILE)
    layout.install_python_model(repository, names.postprocess, "postprocess_step")
    layout.install_engine_step(repository, names.model, target, artifacts.model)
    return written
