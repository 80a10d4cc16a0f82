"""The text-classification deployment: ensemble(tokenizer -> model -> postprocess).

Contract (what clients rely on): input ``TEXT`` TYPE_STRING [1]; outputs ``LABEL`` TYPE_STRING
[1], ``SCORE`` TYPE_FP32 [1], ``PROBABILITIES`` TYPE_FP32 [num_labels] whose
``label_filename`` serves Triton's classification extension (``class_count``); verified on
tritonserver 2.51 to work on an ensemble output.
"""

from __future__ import annotations

from pathlib import Path

from tritonize.errors import RepositoryError
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
    model: ModelSpec,
    target: Target,
    num_labels: int,
    pad_token_id: int,
    dynamic_batching: bool = True,
    torch_parameters: dict[str, str] | None = None,
) -> list[TritonModelConfig]:
    """Every config of the deployment, ensemble first. Raises RepositoryError if miswired.

    ``torch_parameters``: the fused step runs the model in PyTorch (embedded torch runtimes).
    """
    names = layout.StepNames(model.name)
    if torch_parameters is not None and not is_fused(model, target):
        raise RepositoryError(f"{model.name}: the PyTorch runtime runs in the embedded target's fused step only")
    if is_fused(model, target):
        fused = steps.fused_step(model, names.model, num_labels, pad_token_id, dynamic_batching, torch_parameters)
        chain = [(fused, {"TEXT": "TEXT"}, {t.name: t.name for t in fused.outputs})]
    else:
        graph = sequence_classification_graph(num_labels)
        ids = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
        chain = [
            (steps.tokenizer_step(model, names.tokenizer, target, pad_token_id, dynamic_batching), {"TEXT": "TEXT"}, ids),
            (steps.engine_step(model, names.model, graph, target, dynamic_batching), ids, {"logits": "logits"}),
            (
                steps.postprocess_step(model, names.postprocess, num_labels, dynamic_batching),
                {"logits": "logits"},
                {"LABEL": "LABEL", "SCORE": "SCORE", "PROBABILITIES": "PROBABILITIES"},
            ),
        ]
    ensemble = TritonModelConfig(
        name=model.name,
        platform="ensemble",
        max_batch_size=model.batching.max_batch_size,
        inputs=(steps.TEXT_INPUT,),
        outputs=steps.classification_outputs(num_labels, label_filename=layout.LABELS_FILE),
        ensemble_steps=tuple(EnsembleStep(model_name=c.name, input_map=i, output_map=o) for c, i, o in chain),
    )
    configs = [c for c, _, _ in chain]
    check_ensemble(ensemble, {c.name: c for c in configs})
    return steps.with_queue_policy(model, [ensemble, *configs])


def is_fused(model: ModelSpec, target: Target) -> bool:
    """Only the embedded target fuses (one Python model: tokenizer + ONNX Runtime + postprocess,
    one stub crossing instead of three); cpu and gpu keep their separate engine step."""
    return model.python.fuse_steps and target is Target.EMBEDDED


def _write_fused(repository: Path, model: ModelSpec, artifacts: ClassificationArtifacts) -> None:
    names = layout.StepNames(model.name)
    helpers = ("tokenize_step", "onnx_runner", "postprocess_step")
    files = artifacts.model.files
    if artifacts.torch is not None:
        helpers, files = (*helpers, "torch_models"), artifacts.torch.files
    entry = layout.install_python_model(repository, names.model, "fused_classifier", helpers=helpers)
    layout.copy_file(artifacts.tokenizer_json, entry.parent, layout.TOKENIZER_FILE)
    layout.write_labels(repository / names.model, artifacts.labels)
    for name, src in files.items():
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
    torch_parameters = artifacts.torch.parameters if artifacts.torch is not None else None
    configs = classification_configs(
        model, target, len(artifacts.labels), artifacts.pad_token_id, dynamic_batching, torch_parameters
    )
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
