"""Config builders for the steps every deployment shares, one function per step kind.

Only :func:`engine_step` depends on the target: the tokenizer, postprocess and ensemble are
identical for ``embedded``, ``cpu`` and ``gpu``.
"""

from __future__ import annotations

import dataclasses

from tritonize.export.tensors import GraphDecl
from tritonize.repository.layout import ONNX_FILE, PLAN_FILE
from tritonize.repository.triton_config import (
    KIND_CPU,
    KIND_GPU,
    DynamicBatching,
    QueuePolicy,
    TensorConfig,
    TritonModelConfig,
)
from tritonize.spec import ModelSpec, Runtime, Target

TEXT_INPUT = TensorConfig(name="TEXT", data_type="TYPE_STRING", dims=(1,))
TENSORRT_PLATFORM = "tensorrt_plan"


def batcher(model: ModelSpec, enabled: bool, target: Target = Target.EMBEDDED) -> DynamicBatching | None:
    """The engine step's batcher: waits up to the spec's delay to fill a batch.

    On the gpu target it prefers the TensorRT profile's opt batch and the profile's max (both
    inside the profile, so every batch it forms is a shape the engine was built for).
    """
    if not enabled:
        return None
    preferred = tuple(sorted({model.profile_opt_batch, model.batching.max_batch_size})) if target is Target.GPU else ()
    return DynamicBatching(max_queue_delay_microseconds=model.batching.max_queue_delay_us, preferred_batch_size=preferred)


def python_batcher(enabled: bool, delay_us: int = 0) -> DynamicBatching | None:
    """Tokenizer / postprocess batcher: takes whatever is queued, never waits.

    These steps cost little per text, so waiting to fill a batch only adds latency (measured
    on the full DistilBERT demo, 2 cores: p50 at concurrency 1 went from 20 ms to 14 ms);
    under load the queue fills by itself and they still run many requests per execute().
    """
    return DynamicBatching(max_queue_delay_microseconds=delay_us) if enabled else None


def with_queue_policy(model: ModelSpec, configs: list[TritonModelConfig]) -> list[TritonModelConfig]:
    """``configs`` with the spec's queue policy on every step that has a dynamic batcher.

    The policy belongs to the steps (where requests wait), not the ensemble (which has no queue
    of its own and whose config Triton rejects with one). A step without a batcher uses Triton's
    default scheduler, which has no queue policy.
    """
    policy = QueuePolicy(
        max_queue_size=model.batching.max_queue_size,
        default_timeout_microseconds=model.batching.queue_timeout_us,
        allow_timeout_override=model.batching.allow_timeout_override,
    )
    return [
        dataclasses.replace(c, dynamic_batching=dataclasses.replace(c.dynamic_batching, default_queue_policy=policy))
        if c.dynamic_batching is not None and not c.is_ensemble
        else c
        for c in configs
    ]


def tokenizer_step(
    model: ModelSpec, name: str, target: Target, pad_token_id: int, dynamic_batching: bool
) -> TritonModelConfig:
    """Python-backend tokenizer. GPU pads jointly (batching pays there); CPU pads per request."""
    ids = TensorConfig(name="input_ids", data_type="TYPE_INT64", dims=(-1,))
    mask = TensorConfig(name="attention_mask", data_type="TYPE_INT64", dims=(-1,))
    return TritonModelConfig(
        name=name,
        backend="python",
        max_batch_size=model.python_batch,
        inputs=(TEXT_INPUT,),
        outputs=(ids, mask),
        dynamic_batching=python_batcher(dynamic_batching, model.python.python_max_queue_delay_us),
        instance_count=model.python.python_instances,
        parameters={**tokenizer_parameters(model, pad_token_id), "padding": "joint" if target is Target.GPU else "request"},
    )


def tokenizer_parameters(model: ModelSpec, pad_token_id: int) -> dict[str, str]:
    return {
        "max_input_length": str(model.max_input_length),
        "length_buckets": ",".join(str(b) for b in model.length_buckets),
        "pad_token_id": str(pad_token_id),
    }


def torch_placement(model: ModelSpec) -> dict[str, object]:
    """Where a torch-runtime step's instances go: ``KIND_GPU`` on the spec's GPUs (every GPU when
    it names none) for torch-cuda, ``KIND_CPU`` for torch-cpu."""
    if model.engine.embedded_runtime is Runtime.TORCH_CUDA:
        return {"instance_kind": KIND_GPU, "instance_gpus": tuple(model.engine.instance_gpus)}
    return {"instance_kind": KIND_CPU}


def fused_step(
    model: ModelSpec,
    name: str,
    num_labels: int,
    pad_token_id: int,
    dynamic_batching: bool,
    torch_parameters: dict[str, str] | None = None,
) -> TritonModelConfig:
    """The embedded target's fused step (tokenizer + model + postprocess in one Python model).

    Its ``max_batch_size`` is the Python steps' (whole requests merge into one execute) and it
    never waits to fill a batch: while it computes, the queue fills by itself. The model runs in
    ONNX Runtime, or in PyTorch when the build hands ``torch_parameters`` (then instances are
    placed by :func:`torch_placement`).
    """
    placement = torch_placement(model) if torch_parameters is not None else {}
    return TritonModelConfig(
        name=name,
        backend="python",
        max_batch_size=model.python_batch,
        inputs=(TEXT_INPUT,),
        outputs=classification_outputs(num_labels, label_filename=None),
        dynamic_batching=python_batcher(dynamic_batching, model.python.python_max_queue_delay_us),
        instance_count=model.python.python_instances,
        parameters={
            **tokenizer_parameters(model, pad_token_id),
            "engine_batch": str(model.engine_batch),
            "intra_op_num_threads": "0",
            **(torch_parameters or {}),
        },
        **placement,
    )


def engine_step(
    model: ModelSpec, name: str, graph: GraphDecl, target: Target, dynamic_batching: bool
) -> TritonModelConfig:
    """The model step: the only config that differs between targets."""
    ragged = target is Target.EMBEDDED  # the Python runner regroups shapes itself
    inputs = tuple(TensorConfig.from_decl(t, allow_ragged_batch=ragged) for t in graph.inputs)
    outputs = tuple(TensorConfig.from_decl(t) for t in graph.outputs)
    common = dict(
        name=name,
        max_batch_size=model.batching.max_batch_size,
        inputs=inputs,
        outputs=outputs,
        dynamic_batching=batcher(model, dynamic_batching, target),
        instance_count=model.batching.instances,
    )
    if target is Target.EMBEDDED:
        return TritonModelConfig(backend="python", parameters={"intra_op_num_threads": "0"}, **common)
    if target is Target.CPU:
        return TritonModelConfig(backend="onnxruntime", default_model_filename=ONNX_FILE, **common)
    return TritonModelConfig(
        platform=TENSORRT_PLATFORM, default_model_filename=PLAN_FILE, instance_kind=KIND_GPU, **common
    )


def postprocess_step(model: ModelSpec, name: str, num_labels: int, dynamic_batching: bool) -> TritonModelConfig:
    return TritonModelConfig(
        name=name,
        backend="python",
        max_batch_size=model.python_batch,
        inputs=(TensorConfig(name="logits", data_type="TYPE_FP32", dims=(num_labels,)),),
        outputs=classification_outputs(num_labels, label_filename=None),
        dynamic_batching=python_batcher(dynamic_batching, model.python.python_max_queue_delay_us),
        instance_count=model.python.python_instances,
        instance_kind=KIND_CPU,
    )


def classification_outputs(num_labels: int, label_filename: str | None) -> tuple[TensorConfig, ...]:
    """The deployment contract for classifiers, shared by DistilBERT and T5 label scoring."""
    return (
        TensorConfig(name="LABEL", data_type="TYPE_STRING", dims=(1,)),
        TensorConfig(name="SCORE", data_type="TYPE_FP32", dims=(1,)),
        TensorConfig(name="PROBABILITIES", data_type="TYPE_FP32", dims=(num_labels,), label_filename=label_filename),
    )
