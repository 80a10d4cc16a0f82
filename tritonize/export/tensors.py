"""Each architecture declares its graph tensors once (Optimum's ``OnnxConfig.inputs`` idea).

torch ``dynamic_axes``, TensorRT min/opt/max profiles, Triton ``dims`` and per-backend dtypes
are all derived from these declarations. Sizes come from the Hugging Face config through a
name mapping (see :data:`NORMALIZED_CONFIG`), never from literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Symbolic axis names. "batch" is Triton's batch dimension (stripped from config dims when
# max_batch_size > 0); other string axes are dynamic (-1 in Triton dims).
BATCH = "batch"
SEQUENCE = "sequence"

# Triton data types as spelled in model_config.proto, mapped to numpy dtype names.
TRITON_TO_NUMPY = {
    "TYPE_BOOL": "bool",
    "TYPE_INT32": "int32",
    "TYPE_INT64": "int64",
    "TYPE_FP16": "float16",
    "TYPE_FP32": "float32",
    "TYPE_STRING": "object",
}

# One integer dtype for ids and masks everywhere (ONNX, Triton, tokenizer step), so no step casts.
ID_DTYPE = "TYPE_INT64"


@dataclass(frozen=True, kw_only=True)
class TensorDecl:
    """A named graph tensor: dtype as Triton spells it, axes as symbolic names or fixed sizes."""

    name: str
    data_type: str
    axes: tuple[str | int, ...]

    def __post_init__(self) -> None:
        if self.data_type not in TRITON_TO_NUMPY:
            raise ValueError(f"tensor {self.name}: unknown data_type {self.data_type}")

    @property
    def batched(self) -> bool:
        return bool(self.axes) and self.axes[0] == BATCH

    def triton_dims(self) -> list[int]:
        """Dims for config.pbtxt: batch axis dropped, symbolic axes as -1."""
        axes = self.axes[1:] if self.batched else self.axes
        return [a if isinstance(a, int) else -1 for a in axes]

    def dynamic_axes(self) -> dict[int, str]:
        """torch.onnx.export ``dynamic_axes`` entry for this tensor."""
        return {i: a for i, a in enumerate(self.axes) if isinstance(a, str)}


@dataclass(frozen=True, kw_only=True)
class GraphDecl:
    """Inputs and outputs of one exported graph (one Triton model step)."""

    component: str
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.dynamic_axes() for t in (*self.inputs, *self.outputs) if t.dynamic_axes()}


# Config attribute names per model_type (Optimum's NormalizedConfig idea).
NORMALIZED_CONFIG: dict[str, dict[str, str]] = {
    "distilbert": {"hidden_size": "dim", "num_layers": "n_layers", "num_heads": "n_heads", "vocab_size": "vocab_size"},
    "t5": {
        "hidden_size": "d_model",
        "num_layers": "num_layers",
        "num_decoder_layers": "num_decoder_layers",
        "num_heads": "num_heads",
        "head_dim": "d_kv",
        "vocab_size": "vocab_size",
    },
}


def normalized(config: Any, key: str) -> int:
    """Read a size from a HF config through :data:`NORMALIZED_CONFIG`."""
    mapping = NORMALIZED_CONFIG.get(config.model_type, {})
    return int(getattr(config, mapping.get(key, key)))


def sequence_classification_graph(num_labels: int) -> GraphDecl:
    """Encoder-only classifier: ids + mask -> logits. Same for DistilBERT, BERT, RoBERTa..."""
    return GraphDecl(
        component="model",
        inputs=(
            TensorDecl(name="input_ids", data_type=ID_DTYPE, axes=(BATCH, SEQUENCE)),
            TensorDecl(name="attention_mask", data_type=ID_DTYPE, axes=(BATCH, SEQUENCE)),
        ),
        outputs=(TensorDecl(name="logits", data_type="TYPE_FP32", axes=(BATCH, num_labels)),),
    )
