"""The text2text-generation deployment (T5): a Python-backend BLS decoding loop over engine steps.

Models written for a deployment ``<name>``:

* ``<name>`` — Python backend, the entry point. Input ``TEXT`` TYPE_STRING [1] and optional
  ``max_new_tokens`` TYPE_INT32 [1]; outputs ``GENERATED_TEXT`` TYPE_STRING [1],
  ``OUTPUT_IDS`` TYPE_INT64 [-1] (generated ids, pad-filled) and, for classification-style
  deployments, ``LABEL`` / ``SCORE`` / ``PROBABILITIES`` (label scoring: the same contract as
  the DistilBERT ensemble, so a client can swap models). It tokenizes every request of one
  ``execute()`` together, runs one batched encoder call per length bucket, then greedy steps
  with the KV cache, and computes only the outputs a request asked for.
* ``<name>_encoder``, ``<name>_decoder``, ``<name>_decoder_with_past`` — engine steps with
  dynamic batching (ONNX Runtime runner / onnxruntime / TensorRT by target), shared by every
  BLS instance. The decoders are not merged with an ONNX ``If`` (TensorRT handles it poorly).

Why BLS rather than an ensemble: generation is a loop whose length depends on the data, which
an ensemble's static DAG cannot express.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tritonize.export.tensors import GraphDecl
from tritonize.repository import layout, steps
from tritonize.repository.triton_config import TensorConfig, TritonModelConfig, write_config
from tritonize.spec import ModelSpec, Target

log = logging.getLogger(__name__)

# Step component names; the ONNX file of each is <component>_model.onnx before it is installed.
COMPONENTS = ("encoder", "decoder", "decoder_with_past")


def generate_model_config(model: ModelSpec, num_labels: int, dynamic_batching: bool, parameters: dict[str, str]) -> TritonModelConfig:
    outputs = (
        TensorConfig(name="GENERATED_TEXT", data_type="TYPE_STRING", dims=(1,)),
        TensorConfig(name="OUTPUT_IDS", data_type="TYPE_INT64", dims=(-1,)),
    )
    if num_labels:
        outputs += steps.classification_outputs(num_labels, label_filename=layout.LABELS_FILE)
    return TritonModelConfig(
        name=model.name,
        backend="python",
        max_batch_size=model.max_batch_size,
        inputs=(
            steps.TEXT_INPUT,
            TensorConfig(name="max_new_tokens", data_type="TYPE_INT32", dims=(1,), optional=True),
        ),
        outputs=outputs,
        dynamic_batching=steps.python_batcher(dynamic_batching),
        instance_count=1,
        parameters=parameters,
    )


def text2text_configs(
    model: ModelSpec,
    target: Target,
    graphs: dict[str, GraphDecl],
    parameters: dict[str, str],
    num_labels: int,
    dynamic_batching: bool = True,
) -> list[TritonModelConfig]:
    """Entry (BLS) config first, then one engine step per component."""
    names = layout.StepNames(model.name)
    engine_steps = [
        steps.engine_step(model, names.component(c), graphs[c], target, dynamic_batching) for c in COMPONENTS
    ]
    params = {
        **parameters,
        **{f"{c}_model": names.component(c) for c in COMPONENTS},
        "max_new_tokens": str(model.max_new_tokens),
        "max_new_tokens_limit": str(model.max_new_tokens_limit),
        "max_input_length": str(model.max_input_length),
        "length_buckets": ",".join(str(b) for b in model.length_buckets),
        "step_max_batch_size": str(model.max_batch_size),
    }
    return steps.with_queue_policy(model, [generate_model_config(model, num_labels, dynamic_batching, params), *engine_steps])


def write_text2text(
    repository: Path,
    model: ModelSpec,
    target: Target,
    graphs: dict[str, GraphDecl],
    engines: dict[str, Path],
    tokenizer_json: Path,
    parameters: dict[str, str],
    labels: tuple[str, ...],
    dynamic_batching: bool = True,
) -> list[Path]:
    names = layout.StepNames(model.name)
    configs = text2text_configs(model, target, graphs, parameters, len(labels), dynamic_batching)
    written = [write_config(c, repository) for c in configs]
    entry = layout.install_python_model(repository, model.name, "t5_generate", helpers=("tokenize_step", "t5_decoding"))
    layout.copy_file(tokenizer_json, entry.parent, layout.TOKENIZER_FILE)
    if labels:
        layout.write_labels(repository / model.name, labels)
    for component in COMPONENTS:
        step = names.component(component)
        if target is Target.EMBEDDED:
            layout.install_python_model(repository, step, "onnx_runner")
        layout.copy_file(engines[component], layout.version_dir(repository, step), layout.engine_file(target))
    return written


def build_text2text_deployment(model: ModelSpec, checkpoint: str, options: Any, workdir: Path) -> dict[str, Any]:
    """Export the three graphs, validate them, write the deployment; returns the report entry."""
    from tritonize.builder import save_tokenizer_json, validation_texts
    from tritonize.export.t5 import export_t5, validate_t5

    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, workdir / "tokenizer")
    exported = export_t5(checkpoint, workdir / "onnx")
    texts = validation_texts(options)
    validation = validate_t5(checkpoint, exported, texts, model.tolerance)
    parameters = {
        "pad_token_id": str(pad_id),
        "eos_token_id": str(exported.eos_token_id),
        "decoder_start_token_id": str(exported.decoder_start_token_id),
        "num_decoder_layers": str(exported.num_decoder_layers),
    }
    configs = write_text2text(
        options.out,
        model,
        options.target,
        exported.graphs,
        exported.paths,
        tokenizer_json,
        parameters,
        model.labels,
        options.dynamic_batching,
    )
    return {
        "labels": list(model.labels),
        "validation": validation,
        "configs": [str(p.relative_to(options.out)) for p in configs],
    }
