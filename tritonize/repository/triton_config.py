"""Typed mirror of Triton's ``model_config.proto`` and its serialisation.

The user-facing :class:`~tritonize.spec.ModelSpec` is small; this module holds the internal
config that mirrors Triton's proto (the split PyTriton makes between ``ModelConfig`` and
``TritonModelConfig``). ``config.pbtxt`` is produced through protobuf (``json_format`` into
``model_config_pb2.ModelConfig``, then ``text_format``), never string templates, so a field
Triton does not know fails at generation time rather than at server start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.errors import RepositoryError
from tritonize.export.tensors import TensorDecl

KIND_CPU = "KIND_CPU"
KIND_GPU = "KIND_GPU"


@dataclass(frozen=True, kw_only=True)
class TensorConfig:
    """A model input or output (``ModelInput`` / ``ModelOutput``)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    label_filename: str | None = None
    allow_ragged_batch: bool = False
    optional: bool = False

    @classmethod
    def from_decl(cls, decl: TensorDecl, **extra: Any) -> TensorConfig:
        return cls(name=decl.name, data_type=decl.data_type, dims=tuple(decl.triton_dims()), **extra)

    def to_dict(self, is_input: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data_type": self.data_type, "dims": list(self.dims)}
        if is_input:
            if self.allow_ragged_batch:
                out["allow_ragged_batch"] = True
            if self.optional:
                out["optional"] = True
        elif self.label_filename:
            out["label_filename"] = self.label_filename
        return out


@dataclass(frozen=True, kw_only=True)
class QueuePolicy:
    """``ModelQueuePolicy``: how many requests may wait, for how long, and what happens after.

    ``timeout_action`` is ``REJECT``: a request that waited too long is answered with an error
    (``Request timeout expired``) instead of being run late (``DELAY``). 0 = no limit.
    """

    max_queue_size: int = 0
    default_timeout_microseconds: int = 0
    allow_timeout_override: bool = False
    timeout_action: str = "REJECT"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timeout_action": self.timeout_action,
            "default_timeout_microseconds": self.default_timeout_microseconds,
            "allow_timeout_override": self.allow_timeout_override,
            "max_queue_size": self.max_queue_size,
        }


@dataclass(frozen=True, kw_only=True)
class DynamicBatching:
    max_queue_delay_microseconds: int
    preferred_batch_size: tuple[int, ...] = ()
    default_queue_policy: QueuePolicy | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_queue_delay_microseconds": self.max_queue_delay_microseconds}
        if self.preferred_batch_size:
            out["preferred_batch_size"] = list(self.preferred_batch_size)
        if self.default_queue_policy is not None:
            out["default_queue_policy"] = self.default_queue_policy.to_dict()
        return out


@dataclass(frozen=True, kw_only=True)
class EnsembleStep:
    """One ``ensemble_scheduling.step``: maps are step tensor name -> ensemble tensor name."""

    model_name: str
    input_map: dict[str, str]
    output_map: dict[str, str]
    model_version: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "input_map": dict(self.input_map),
            "output_map": dict(self.output_map),
        }


@dataclass(frozen=True, kw_only=True)
class TritonModelConfig:
    """What one ``config.pbtxt`` says. Exactly one of backend / platform is set."""

    name: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    backend: str | None = None
    platform: str | None = None
    dynamic_batching: DynamicBatching | None = None
    instance_count: int = 1
    instance_kind: str = KIND_CPU
    instance_gpus: tuple[int, ...] = ()  # KIND_GPU: instance_count instances on each (empty: every GPU)
    default_model_filename: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    ensemble_steps: tuple[EnsembleStep, ...] = ()

    def __post_init__(self) -> None:
        if (self.backend is None) == (self.platform is None):
            raise RepositoryError(f"model {self.name}: set exactly one of backend and platform")
        if self.platform == "ensemble" and not self.ensemble_steps:
            raise RepositoryError(f"ensemble {self.name}: has no steps")

    @property
    def is_ensemble(self) -> bool:
        return self.platform == "ensemble"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "max_batch_size": self.max_batch_size}
        out.update({"backend": self.backend} if self.backend else {"platform": self.platform})
        out["input"] = [t.to_dict(is_input=True) for t in self.inputs]
        out["output"] = [t.to_dict(is_input=False) for t in self.outputs]
        if self.default_model_filename:
            out["default_model_filename"] = self.default_model_filename
        if self.is_ensemble:
            out["ensemble_scheduling"] = {"step": [s.to_dict() for s in self.ensemble_steps]}
            return out  # ensembles take no instance group or batcher of their own
        if self.dynamic_batching is not None:
            out["dynamic_batching"] = self.dynamic_batching.to_dict()
        group: dict[str, Any] = {"count": self.instance_count, "kind": self.instance_kind}
        if self.instance_gpus:
            group["gpus"] = list(self.instance_gpus)
        out["instance_group"] = [group]
        if self.parameters:
            out["parameters"] = {k: {"string_value": v} for k, v in self.parameters.items()}
        return out


def to_proto(config: TritonModelConfig) -> Any:
    """Typed config -> ``model_config_pb2.ModelConfig``. Raises RepositoryError on unknown fields."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    try:
        return json_format.ParseDict(config.to_dict(), model_config_pb2.ModelConfig())
    except json_format.ParseError as exc:
        raise RepositoryError(f"model {config.name}: config does not fit Triton's ModelConfig: {exc}") from exc


def to_pbtxt(config: TritonModelConfig) -> str:
    from google.protobuf import text_format

    header = "# Generated by `tritonize build` from the model spec. Do not edit: change the spec and rebuild.\n"
    return header + text_format.MessageToString(to_proto(config))


def parse_pbtxt(text: str) -> Any:
    """Parse a ``config.pbtxt`` back into the protobuf (tests compare protos, not strings)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def check_ensemble(ensemble: TritonModelConfig, steps: dict[str, TritonModelConfig]) -> None:
    """Check that every step tensor is wired: inputs come from the ensemble or an earlier step,
    every ensemble output is produced, and step tensor names exist on the step models.

    Raises RepositoryError listing every problem found.
    """
    problems: list[str] = []
    available = {t.name for t in ensemble.inputs}
    for step in ensemble.ensemble_steps:
        model = steps.get(step.model_name)
        if model is None:
            problems.append(f"step model {step.model_name} is not generated")
            continue
        step_inputs = {t.name for t in model.inputs}
        step_outputs = {t.name for t in model.outputs}
        for step_tensor, ens_tensor in step.input_map.items():
            if step_tensor not in step_inputs:
                problems.append(f"{step.model_name} has no input {step_tensor}")
            if ens_tensor not in available:
                problems.append(f"{step.model_name}.{step_tensor} reads {ens_tensor}, which nothing produced before")
        required = {t.name for t in model.inputs if not t.optional}
        missing = required - set(step.input_map)
        if missing:
            problems.append(f"{step.model_name}: inputs {sorted(missing)} are not mapped")
        for step_tensor, ens_tensor in step.output_map.items():
            if step_tensor not in step_outputs:
                problems.append(f"{step.model_name} has no output {step_tensor}")
            available.add(ens_tensor)
    for out in ensemble.outputs:
        if out.name not in available:
            problems.append(f"ensemble output {out.name} is produced by no step")
    if problems:
        raise RepositoryError(f"ensemble {ensemble.name} is miswired: " + "; ".join(problems))


def write_config(config: TritonModelConfig, repository: Path) -> Path:
    """Write ``<repository>/<name>/config.pbtxt`` and make sure version directory 1 exists."""
    model_dir = repository / config.name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    path = model_dir / "config.pbtxt"
    path.write_text(to_pbtxt(config), encoding="utf-8")
    return path
