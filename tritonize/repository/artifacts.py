"""What the build pipeline hands the repository layer: finished files, nothing to compute.

The repository layer writes configs and copies these files; it never exports, validates or
compiles (those stages live in :mod:`tritonize.pipeline` and hand their results down here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonize.export.tensors import GraphDecl


@dataclass(frozen=True, kw_only=True)
class StepFiles:
    """One engine step: its declared tensors and the files of its version directory.

    ``files`` maps the name in ``<step>/1/`` to the source file: ``model.onnx`` for the
    embedded and cpu targets; ``model.plan`` (when built), ``model.onnx`` (the source the
    engine is rebuilt from on the serving GPU) and ``build_info.json`` for the gpu target.
    """

    graph: GraphDecl
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TorchStepFiles:
    """The embedded target's PyTorch model step: the checkpoint files (safetensors + config) its
    version directory gets, and the config parameters it loads them with (class, plans, device)."""

    files: dict[str, Path]
    parameters: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class ClassificationArtifacts:
    """Files a classification deployment is assembled from."""

    labels: tuple[str, ...]
    pad_token_id: int
    tokenizer_json: Path
    model: StepFiles
    torch: TorchStepFiles | None = None  # set: the fused step runs the model in PyTorch


@dataclass(frozen=True, kw_only=True)
class Text2TextArtifacts:
    """Files a T5 deployment is assembled from: one engine step per component."""

    labels: tuple[str, ...]
    tokenizer_json: Path
    steps: dict[str, StepFiles]  # keyed by component (encoder, decoder, decoder_with_past)
    parameters: dict[str, str]  # token ids and layer count the decoding loop needs
    torch: TorchStepFiles | None = None  # set: the entry model runs the model in PyTorch (no engine steps)
