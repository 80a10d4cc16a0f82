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

from pathlib import Path

from tritonize.export.tensors import T5_COMPONENTS as COMPONENTS
from tritonize.export.tensors import GraphDecl
from tritonize.repository import layout, steps
from tritonize.repository.artifacts import Text2TextArtifacts
from tritonize.repository.triton_config import KIND_CPU, KIND_GPU, TensorConfig, TritonModelConfig, write_config
from tritonize.spec import ModelSpec, Target


def generate_model_config(
    model: ModelSpec, num_labels: int, dynamic_batching: bool, parameters: dict[str, str], **placement: object
) -> TritonModelConfig:
    """The entry (BLS) model. ``placement`` (``instance_kind``, ``instance_gpus``): ``KIND_GPU`` on the
    gpu target, where Triton starts ``generate_instances`` per GPU and tells each its device, where it
    keeps its torch work and asks for step outputs; the torch runtimes place it as their steps."""
    outputs = (
        TensorConfig(name="GENERATED_TEXT", data_type="TYPE_STRING", dims=(1,)),
        TensorConfig(name="OUTPUT_IDS", data_type="TYPE_INT64", dims=(-1,)),
    )
    if num_labels:
        outputs += steps.classification_outputs(num_labels, label_filename=layout.LABELS_FILE)
    return TritonModelConfig(
        name=model.name,
        backend="python",
        max_batch_size=model.batching.max_batch_size,
        inputs=(
            steps.TEXT_INPUT,
            TensorConfig(name="max_new_tokens", data_type="TYPE_INT32", dims=(1,), optional=True),
        ),
        outputs=outputs,
        dynamic_batching=steps.python_batcher(dynamic_batching),
        instance_count=model.batching.generate_instances,
        parameters=parameters,
        **placement,
    )


def text2text_configs(
    model: ModelSpec,
    target: Target,
    graphs: dict[str, GraphDecl],
    parameters: dict[str, str],
    num_labels: int,
    dynamic_batching: bool = True,
    torch_parameters: dict[str, str] | None = None,
) -> list[TritonModelConfig]:
    """Entry (BLS) config first, then one engine step per component.

    ``torch_parameters`` (embedded torch runtimes): the entry model runs the three components in
    PyTorch itself, so there are no engine steps and the KV cache never leaves its process.
    """
    names = layout.StepNames(model.name)
    common = {
        **parameters,
        "max_new_tokens": str(model.generation.max_new_tokens),
        "max_new_tokens_limit": str(model.generation.max_new_tokens_limit),
        "max_input_length": str(model.max_input_length),
        "length_buckets": ",".join(str(b) for b in model.length_buckets),
    }
    if torch_parameters is not None:
        entry = generate_model_config(
            model, num_labels, dynamic_batching, {**common, **torch_parameters}, **steps.torch_placement(model)
        )
        return steps.with_queue_policy(model, [entry])
    engine_steps = [
        steps.engine_step(model, names.component(c), graphs[c], target, dynamic_batching) for c in COMPONENTS
    ]
    params = {
        **common,
        **{f"{c}_model": names.component(c) for c in COMPONENTS},
        "step_max_batch_size": str(model.batching.max_batch_size),
        # Where BLS step outputs live: on the GPU the KV cache stays there between steps (DLPack).
        "step_memory": "gpu" if target is Target.GPU else "cpu",
    }
    kind = KIND_GPU if target is Target.GPU else KIND_CPU
    entry = generate_model_config(model, num_labels, dynamic_batching, params, instance_kind=kind)
    return steps.with_queue_policy(model, [entry, *engine_steps])


def write_text2text(
    repository: Path,
    model: ModelSpec,
    target: Target,
    artifacts: Text2TextArtifacts,
    dynamic_batching: bool = True,
) -> list[Path]:
    """Write the entry model and the three engine steps (torch runtimes: the entry model with the
    checkpoint beside it); returns the config paths."""
    names = layout.StepNames(model.name)
    graphs = {component: step.graph for component, step in artifacts.steps.items()}
    torch_step = artifacts.torch
    configs = text2text_configs(
        model, target, graphs, artifacts.parameters, len(artifacts.labels), dynamic_batching,
        torch_step.parameters if torch_step is not None else None,
    )  # fmt: skip
    written = [write_config(c, repository) for c in configs]
    helpers = ("tokenize_step", "t5_decoding") + (("torch_models",) if torch_step is not None else ())
    entry = layout.install_python_model(repository, model.name, "t5_generate", helpers=helpers)
    layout.copy_file(artifacts.tokenizer_json, entry.parent, layout.TOKENIZER_FILE)
    if artifacts.labels:
        layout.write_labels(repository / model.name, artifacts.labels)
    if torch_step is not None:
        for name, src in torch_step.files.items():
            layout.copy_file(src, entry.parent, name)
        return written
    for component in COMPONENTS:
        layout.install_engine_step(repository, names.component(component), target, artifacts.steps[component])
    return written
