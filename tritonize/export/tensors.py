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


# --- T5 (encoder-decoder), split Optimum-style into three graphs without an ONNX If ---------

ENCODER_SEQUENCE = "encoder_sequence"
DECODER_SEQUENCE = "decoder_sequence"
PAST_DECODER_SEQUENCE = "past_decoder_sequence"
TOTAL_DECODER_SEQUENCE = "total_decoder_sequence"  # past_decoder_sequence + 1

T5_ENCODER = "encoder"
T5_DECODER = "decoder"  # first step: no past, computes every layer's cross-attention keys/values
T5_DECODER_WITH_PAST = "decoder_with_past"  # later steps: one new token, self + cross cache in
T5_COMPONENTS = (T5_ENCODER, T5_DECODER, T5_DECODER_WITH_PAST)
KV_ATTENTIONS = ("decoder", "encoder")  # self-attention cache, cross-attention cache
KV_PARTS = ("key", "value")


def kv_name(prefix: str, layer: int, attention: str, part: str) -> str:
    """``present.0.decoder.key`` / ``past_key_values.3.encoder.value`` (Optimum's names)."""
    return f"{prefix}.{layer}.{attention}.{part}"


def _kv_decls(prefix: str, config: Any, attentions: tuple[str, ...], self_axis: str) -> tuple[TensorDecl, ...]:
    heads, head_dim = normalized(config, "num_heads"), normalized(config, "head_dim")
    axes = {"decoder": (BATCH, heads, self_axis, head_dim), "encoder": (BATCH, heads, ENCODER_SEQUENCE, head_dim)}
    return tuple(
        TensorDecl(name=kv_name(prefix, layer, attention, part), data_type="TYPE_FP32", axes=axes[attention])
        for layer in range(normalized(config, "num_decoder_layers"))
        for attention in attentions
        for part in KV_PARTS
    )


def t5_graphs(config: Any) -> dict[str, GraphDecl]:
    """The three T5 graphs keyed by component (:data:`T5_COMPONENTS`); sizes from the HF config.

    ``decoder`` takes any number of decoder tokens (one for generation, a whole label for
    teacher-forced label scoring); ``decoder_with_past`` takes exactly one new token.
    """
    hidden, vocab = normalized(config, "hidden_size"), normalized(config, "vocab_size")
    ids = TensorDecl(name="input_ids", data_type=ID_DTYPE, axes=(BATCH, ENCODER_SEQUENCE))
    mask = TensorDecl(name="attention_mask", data_type=ID_DTYPE, axes=(BATCH, ENCODER_SEQUENCE))
    encoder_mask = TensorDecl(name="encoder_attention_mask", data_type=ID_DTYPE, axes=(BATCH, ENCODER_SEQUENCE))
    hidden_states = (BATCH, ENCODER_SEQUENCE, hidden)
    encoder = GraphDecl(
        component=T5_ENCODER,
        inputs=(ids, mask),
        outputs=(TensorDecl(name="last_hidden_state", data_type="TYPE_FP32", axes=hidden_states),),
    )
    decoder = GraphDecl(
        component=T5_DECODER,
        inputs=(
            TensorDecl(name="input_ids", data_type=ID_DTYPE, axes=(BATCH, DECODER_SEQUENCE)),
            encoder_mask,
            TensorDecl(name="encoder_hidden_states", data_type="TYPE_FP32", axes=hidden_states),
        ),
        outputs=(
            TensorDecl(name="logits", data_type="TYPE_FP32", axes=(BATCH, DECODER_SEQUENCE, vocab)),
            *_kv_decls("present", config, KV_ATTENTIONS, DECODER_SEQUENCE),
        ),
    )
    with_past = GraphDecl(
        component=T5_DECODER_WITH_PAST,
        inputs=(
            TensorDecl(name="input_ids", data_type=ID_DTYPE, axes=(BATCH, 1)),
            encoder_mask,
            *_kv_decls("past_key_values", config, KV_ATTENTIONS, PAST_DECODER_SEQUENCE),
        ),
        outputs=(
            TensorDecl(name="logits", data_type="TYPE_FP32", axes=(BATCH, 1, vocab)),
            *_kv_decls("present", config, ("decoder",), TOTAL_DECODER_SEQUENCE),
        ),
    )
    return {T5_ENCODER: encoder, T5_DECODER: decoder, T5_DECODER_WITH_PAST: with_past}
