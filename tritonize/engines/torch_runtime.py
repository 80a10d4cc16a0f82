"""The build side of the embedded target's PyTorch runtimes: device, precision plans, checkpoint
files, and the step callables the accuracy gate compares with the FP32 ONNX export.

The precision plans are the TensorRT engines' (:func:`tritonize.engines.precision.precision_plan`:
FP16 for DistilBERT, BF16 for flan-T5, T5's FP32 islands), resolved for the device the build
runs on, which is the device that will serve: on CUDA its compute capability decides BF16, on
the CPU nothing is ruled out. The served step (:mod:`tritonize.backends.torch_models`) applies
them; this module only decides and records them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.backends import torch_models
from tritonize.engines.precision import PrecisionPlan, family_of, precision_plan
from tritonize.engines.validate import Gate, Step
from tritonize.errors import EngineBuildError, RuntimeUnavailableError
from tritonize.spec import ModelSpec, Runtime, Target, Task

log = logging.getLogger(__name__)

COMPONENTS = {Task.TEXT_CLASSIFICATION: (torch_models.CLASSIFIER,), Task.TEXT2TEXT_GENERATION: torch_models.T5_COMPONENTS}
MODEL_CLASSES = {
    Task.TEXT_CLASSIFICATION: "AutoModelForSequenceClassification",
    Task.TEXT2TEXT_GENERATION: "AutoModelForSeq2SeqLM",
}
# Config parameters of a torch-runtime step (read by tritonize.backends.torch_models' callers).
RUNTIME_PARAMETER = "runtime"
MODEL_CLASS_PARAMETER = "torch_model_class"
PLANS_PARAMETER = "torch_plans"
DEVICE_PARAMETER = "device"
CUDA_GRAPHS_PARAMETER = "cuda_graphs"


def uses_torch(model: ModelSpec, target: Target) -> bool:
    """Whether ``model`` built for ``target`` runs its model step in PyTorch (embedded target only)."""
    return target is Target.EMBEDDED and model.engine.embedded_runtime.is_torch


def require_device(runtime: Runtime, device_id: int = 0) -> Any:
    """The torch device ``runtime`` runs on. Raises RuntimeUnavailableError (one line) when it asks
    for CUDA and this torch has none."""
    try:
        return torch_models.torch_device(runtime.device, device_id)
    except torch_models.RuntimeUnavailable as exc:
        raise RuntimeUnavailableError(str(exc)) from None


def compute_capability(device: Any) -> tuple[int, int] | None:
    """The GPU's compute capability; None on the CPU (no precision is ruled out there)."""
    if device.type != "cuda":
        return None
    import torch

    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def torch_plans(model: ModelSpec, config: Any, device: Any) -> dict[str, PrecisionPlan]:
    """One precision plan per component of ``model`` for ``device``, from its embedded precision.

    Raises EngineBuildError for a precision the architecture must not run in (flan-T5 in FP16).
    """
    family = family_of(config)
    requested = model.engine.precision[Target.EMBEDDED]
    capability = compute_capability(device)
    try:
        return {c: precision_plan(family, c, requested, capability) for c in COMPONENTS[model.task]}
    except EngineBuildError as exc:
        raise EngineBuildError(f"{model.name} (embedded_runtime {model.engine.embedded_runtime.value}): {exc}") from None


def step_plans(plans: dict[str, PrecisionPlan]) -> dict[str, torch_models.ComponentPlan]:
    """The plans as the served step reads them."""
    return {c: torch_models.ComponentPlan(p.precision.value, tuple(p.keep_fp32)) for c, p in plans.items()}


@dataclass(frozen=True, kw_only=True)
class TorchBuild:
    """What a torch-runtime build writes beside the step: the checkpoint files, the step's config
    parameters, the resolved plans and the device they were resolved for."""

    directory: Path
    files: dict[str, Path]
    parameters: dict[str, str]
    plans: dict[str, PrecisionPlan]
    device: str

    def gate(self, model: ModelSpec) -> Gate:
        """The accuracy gate against the FP32 ONNX export: the loosest planned precision's tolerance."""
        return Gate.of(model, max(model.gate.engine_tolerance[p.precision] for p in self.plans.values()))

    def report(self) -> dict[str, Any]:
        return {
            "runtime": self.parameters[RUNTIME_PARAMETER],
            "device": self.device,
            "model_class": self.parameters[MODEL_CLASS_PARAMETER],
            "cuda_graphs": self.parameters[CUDA_GRAPHS_PARAMETER] == "true",
            "plans": {c: p.to_dict() for c, p in self.plans.items()},
            "files": sorted(self.files),
        }

    def step_plans(self) -> dict[str, torch_models.ComponentPlan]:
        return step_plans(self.plans)

    def label(self, model: ModelSpec) -> str:
        """How the accuracy gate names this step: deployment, runtime and the precisions planned."""
        precisions = sorted({p.precision.value for p in self.plans.values()})
        return f"{model.name} ({self.parameters[RUNTIME_PARAMETER]}, {'/'.join(precisions)})"


def save_checkpoint(checkpoint: str, model_class: str, out_dir: Path) -> dict[str, Path]:
    """The checkpoint as safetensors + config in ``out_dir`` (what the step loads without the hub).

    Raises EngineBuildError when the checkpoint cannot be loaded as ``model_class``.
    """
    import transformers

    try:
        model = getattr(transformers, model_class).from_pretrained(checkpoint)
    except Exception as exc:  # OSError, ValueError, safetensors errors
        raise EngineBuildError(f"cannot load {checkpoint!r} as {model_class}: {type(exc).__name__}: {exc}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    files = {p.name: p for p in sorted(out_dir.iterdir()) if p.is_file()}
    missing = [name for name in torch_models.CHECKPOINT_FILES if name not in files and not _sharded(files, name)]
    if missing:
        raise EngineBuildError(f"save_pretrained wrote {sorted(files)} for {checkpoint!r}, not {missing}")
    return files


def _sharded(files: dict[str, Path], name: str) -> bool:
    """A large checkpoint's weights come as shards with an index."""
    return name == torch_models.WEIGHTS_FILE and f"{name}.index.json" in files


def build_torch_step(model: ModelSpec, checkpoint: str, config: Any, workdir: Path) -> TorchBuild:
    """Resolve the device and plans (``config``: the checkpoint's HF config), and write the
    checkpoint files of ``model``'s torch step into ``workdir``.

    Raises RuntimeUnavailableError (no CUDA), EngineBuildError (a plan the architecture rules out,
    an unreadable checkpoint).
    """
    device = require_device(model.engine.embedded_runtime)
    plans = torch_plans(model, config, device)
    model_class = MODEL_CLASSES[model.task]
    files = save_checkpoint(checkpoint, model_class, workdir)
    parameters = {
        RUNTIME_PARAMETER: model.engine.embedded_runtime.value,
        MODEL_CLASS_PARAMETER: model_class,
        PLANS_PARAMETER: torch_models.plans_text(step_plans(plans)),
        DEVICE_PARAMETER: model.engine.embedded_runtime.device,
        CUDA_GRAPHS_PARAMETER: "true" if device.type == "cuda" else "false",
    }
    log.info("%s: %s on %s, plans %s", model.name, model.engine.embedded_runtime.value, device,
             {c: p.precision.value for c, p in plans.items()})  # fmt: skip
    return TorchBuild(directory=workdir, files=files, parameters=parameters, plans=plans, device=str(device))


def classifier_step(built: TorchBuild, model: ModelSpec, pad_token_id: int) -> Step:
    """The served classifier (same loader, buckets and padding) as a gate step on host arrays."""
    device = require_device(model.engine.embedded_runtime)
    classifier = torch_models.load_classifier(
        str(built.directory),
        built.parameters[MODEL_CLASS_PARAMETER],
        device,
        built.step_plans(),
        pad_token_id=pad_token_id,
        length_buckets=model.length_buckets,
        max_rows=model.engine_batch,
        cuda_graphs=built.parameters[CUDA_GRAPHS_PARAMETER] == "true",
    )

    return gate_step(classifier)


def gate_step(classifier: torch_models.TorchClassifier) -> Step:
    """A classifier runner as a gate step: each padded batch is cut back to its token ids by its
    mask and run as the server runs it (its own buckets and padding)."""

    def run(feeds: dict[str, np.ndarray], wanted: Sequence[str]) -> dict[str, np.ndarray]:
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        return {"logits": classifier.logits([row[: int(m.sum())].tolist() for row, m in zip(ids, mask)])}

    return run


def t5_steps(built: TorchBuild, model: ModelSpec) -> dict[str, Step]:
    """The served T5 steps (same loader and plans) as gate steps on host arrays."""
    device = require_device(model.engine.embedded_runtime)
    steps = torch_models.load_t5_steps(
        str(built.directory), built.parameters[MODEL_CLASS_PARAMETER], device, built.step_plans()
    )
    return {c: torch_models.on_host(step) for c, step in steps.items()}
