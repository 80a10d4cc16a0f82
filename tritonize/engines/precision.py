"""Precision plans: which precision each engine is built in, and which layers stay FP32.

One table (:func:`precision_plan`), one line of reason per rule. The spec's ``precision.gpu``
is a request; the plan honours it unless the architecture or the GPU rules it out:

* DistilBERT (and other BERT-style encoders): FP16 as asked. Activations and LayerNorm stay
  inside FP16's range; NVIDIA's BERT engines run FP16.
* T5 v1.0 of t5-small's width: FP16 with T5's layer norm (Pow, ReduceMean, Add eps, Sqrt, Div,
  the scaling Muls) and the residual adds kept in FP32: the layer norm squares the residual
  stream, which grows through the layers and overflows FP16 (the pattern of NVIDIA's TensorRT
  T5 demo, ``demo/HuggingFace/T5/export.py``).
* Wider T5 v1.0 (t5-base and up): the same, and the encoder wholly FP32 for FP16 requests
  ("models larger than t5-small ... cause FP16 to overflow", same demo).
* T5 v1.1 / flan-T5 (gated GELU): never FP16 (TensorRT-LLM's enc_dec README: flan-T5 has
  known FP16 issues, use BF16 or FP32); BF16 on compute capability >= 8.0, else FP32.
* T5, any width or precision below FP32: the relative position buckets stay FP32. T5 turns a
  token distance into a bucket index with floating-point math (``log(distance / max_exact) /
  log(max_distance / max_exact) * buckets``, truncated to an integer); in FP16 or BF16 the
  rounding moves distances into neighbouring buckets, so every attention gets another
  position bias. Measured here on the tiny t5-small demo, FP16 graph in ONNX Runtime: encoder
  output off FP32 by up to 0.49 with the buckets in FP16 (gate tolerance 0.1), found by the
  rehearsal. HF's PyTorch T5 computes them in float32 whatever the model's dtype.
* T5 in BF16: the layer norm stays FP32 too, for precision rather than range: its mean of
  squares of the growing residual stream keeps 8 mantissa bits in BF16. Measured here on the
  tiny t5-base demo's encoder (BF16 graph, ONNX Runtime): 0.41 off FP32 with only the buckets
  in FP32, 0.20 with the layer norm too (gate tolerance 0.25); the residual adds in FP32 as
  well changed nothing (0.23).
* T5 decoders below FP32: the logits projection (``lm_head``, with T5 v1.0's rescale of its
  input by d_model ** -0.5) stays FP32, so the logits keep FP32's resolution. In BF16 a logit
  near 20 is rounded to a multiple of 0.125, so two answers whose logits differ by less come
  out exactly equal and argmax takes the lower token id. Measured here on the full t5-base
  demo (two labels, rehearsal): 3 of 40 first tokens flipped that way with the projection in
  BF16 (FP32 had 0.51 against 0.49; the BF16 graph gave both 0.4977). The same choice as
  TensorRT-LLM's ``trtllm-build --logits_dtype float32`` and Megatron-LM's FP32 output logits
  (NVIDIA/Megatron-LM#6252: logits rounded to BF16 cannot recover the discarded bits). It is
  one matmul per step; its weight stays FP32 in the engine.
* BF16 anywhere needs compute capability >= 8.0 (Ampere); below it the engine is FP32.

A plan is written into the ONNX graph the engine is built from (:mod:`tritonize.engines.precision_graph`:
FP16/BF16 tensors, the FP32 islands behind explicit casts) and the engine is built strongly
typed, with no precision flags: the form TensorRT 11 requires and 10.x accepts (see
:mod:`tritonize.tensorrt_facts`). So the exact numerics of a plan run here, in ONNX
Runtime, before any GPU sees them (``tritonize build --target gpu --rehearse``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tritonize.errors import EngineBuildError
from tritonize.export.tensors import T5_DECODER, T5_DECODER_WITH_PAST, T5_ENCODER, normalized
from tritonize.spec import Precision

BF16_MIN_COMPUTE_CAPABILITY = (8, 0)
T5_SMALL_WIDTH = 512  # d_model of t5-small; wider T5 v1.0 encoders overflow FP16

# Patterns of ONNX nodes a plan may keep in FP32 (found by :func:`fp32_nodes`).
T5_LAYER_NORM = "t5_layer_norm"
RESIDUAL_ADD = "residual_add"
INDEX_MATH = "index_math"  # floating-point math cast to an integer index: T5's position buckets
LOGITS_PROJECTION = "logits_projection"  # the MatMul that makes the ``logits`` output, and its input's rescale
T5_ISLANDS = (T5_LAYER_NORM, RESIDUAL_ADD, INDEX_MATH)
KNOWN_PATTERNS = (*T5_ISLANDS, LOGITS_PROJECTION)
LOGITS_OUTPUT = "logits"  # the decoders' output name (Optimum's)
_T5_DECODERS = frozenset({T5_DECODER, T5_DECODER_WITH_PAST})
_T5_FAMILIES = frozenset({"t5", "t5-wide", "t5-gated"})


class Family(str, enum.Enum):
    """Architecture families that differ in what precision they survive."""

    ENCODER = "encoder"  # DistilBERT, BERT, RoBERTa classifiers
    T5 = "t5"  # T5 v1.0 (ReLU), t5-small width
    T5_WIDE = "t5-wide"  # T5 v1.0 wider than t5-small
    T5_GATED = "t5-gated"  # T5 v1.1 / flan-T5 (gated GELU)


def family_of(config: Any) -> Family:
    """The family of a Hugging Face config. Raises EngineBuildError for an unknown model type."""
    model_type = getattr(config, "model_type", "")
    if model_type in ("distilbert", "bert", "roberta"):
        return Family.ENCODER
    if model_type == "t5":
        gated = bool(getattr(config, "is_gated_act", False)) or str(getattr(config, "feed_forward_proj", "")).startswith(
            "gated"
        )
        if gated:
            return Family.T5_GATED
        return Family.T5 if normalized(config, "hidden_size") <= T5_SMALL_WIDTH else Family.T5_WIDE
    raise EngineBuildError(f"no precision rules for model type {model_type!r}")


@dataclass(frozen=True)
class PrecisionPlan:
    """How one engine is built: its precision, the FP32 islands, and why."""

    requested: Precision
    precision: Precision
    keep_fp32: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested.value,
            "precision": self.precision.value,
            "keep_fp32": list(self.keep_fp32),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecisionPlan:
        return cls(
            requested=Precision(data["requested"]),
            precision=Precision(data["precision"]),
            keep_fp32=tuple(data.get("keep_fp32", ())),
            reason=data.get("reason", ""),
        )


def _with_logits(component: str, islands: tuple[str, ...]) -> tuple[str, ...]:
    """``islands``, and the logits projection for a T5 decoder."""
    return (*islands, LOGITS_PROJECTION) if component in _T5_DECODERS else islands


def _bf16(
    family: Family, component: str, requested: Precision, compute_capability: tuple[int, int] | None, why: str
) -> PrecisionPlan:
    if compute_capability is not None and tuple(compute_capability) < BF16_MIN_COMPUTE_CAPABILITY:
        cc = ".".join(map(str, compute_capability))
        return PrecisionPlan(requested, Precision.FP32, (), f"BF16 needs compute capability >= 8.0, this GPU is {cc}")
    if family.value in _T5_FAMILIES:
        islands = _with_logits(component, (T5_LAYER_NORM, INDEX_MATH))
        logits = " and logits" if LOGITS_PROJECTION in islands else ""
        return PrecisionPlan(
            requested, Precision.BF16, islands, f"{why}; T5's layer norm, position buckets{logits} in FP32"
        )
    return PrecisionPlan(requested, Precision.BF16, (), why)


def precision_plan(
    family: Family, component: str, requested: Precision, compute_capability: tuple[int, int] | None = None
) -> PrecisionPlan:
    """The plan for one engine (``component`` = model / encoder / decoder / decoder_with_past).

    ``compute_capability`` None plans without a GPU at hand (BF16 is then checked at build time).
    Raises EngineBuildError for a precision the family must not be built in.
    """
    if requested is Precision.FP32:
        return PrecisionPlan(requested, Precision.FP32, (), "FP32 as the spec asks")
    if requested is Precision.BF16:
        return _bf16(family, component, requested, compute_capability, "BF16 as the spec asks: FP32's range, no overflow")
    if requested is not Precision.FP16:
        raise EngineBuildError(f"TensorRT engines are built in fp32, fp16 or bf16, not {requested.value}")
    if family is Family.ENCODER:
        return PrecisionPlan(requested, Precision.FP16, (), "encoder classifiers stay inside FP16's range")
    if family is Family.T5_GATED:
        raise EngineBuildError(
            "flan-T5 / T5 v1.1 (gated GELU) overflows in FP16 (TensorRT-LLM enc_dec README): "
            "set its gpu precision to bf16 or fp32"
        )
    if family is Family.T5_WIDE and component == T5_ENCODER:
        return PrecisionPlan(requested, Precision.FP32, (), "T5 encoders wider than t5-small overflow FP16")
    islands = _with_logits(component, T5_ISLANDS)
    logits = " and the logits" if LOGITS_PROJECTION in islands else ""
    return PrecisionPlan(
        requested,
        Precision.FP16,
        islands,
        "T5 layer norm and residual adds overflow FP16: kept in FP32 (NVIDIA TensorRT T5 demo), "
        f"and so are the position buckets{logits}",
    )


# --- finding the islands in an exported graph --------------------------------------------

_LAYER_NORM_OPS = {"ReduceMean", "Add", "Sqrt", "Div", "Reciprocal", "Mul", "Cast"}


def _index(nodes: Iterable[Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    producers: dict[str, Any] = {}
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for out in node.output:
            producers[out] = node
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    return producers, consumers


def _scalar(name: str, producers: dict[str, Any], initializers: dict[str, Any]) -> float | None:
    """The value of a scalar constant input (a Constant node's or an initializer's), else None."""
    from onnx import numpy_helper

    tensor = initializers.get(name)
    node = producers.get(name)
    if tensor is None and node is not None and node.op_type == "Constant":
        tensor = next((a.t for a in node.attribute if a.name == "value"), None)
    if tensor is None:
        return None
    value = numpy_helper.to_array(tensor)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _layer_norm_chain(pow_node: Any, consumers: dict[str, list[Any]], weights: set[str]) -> list[Any]:
    """Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div/Reciprocal -> Mul(x, .) -> Mul(weight, .)."""
    chain, frontier, seen = [pow_node], list(pow_node.output), {pow_node.name}
    for _ in range(8):  # the chain is six nodes long; the bound stops a walk into the next block
        following = [n for t in frontier for n in consumers.get(t, []) if n.op_type in _LAYER_NORM_OPS]
        following = [n for n in following if n.name not in seen]
        if not following:
            break
        chain += following
        seen.update(n.name for n in following)
        if any(n.op_type == "Mul" and weights & set(n.input) for n in following):
            break  # the final scale by the layer norm weight
        frontier = [t for n in following for t in n.output]
    return chain


_FLOATING = frozenset({1, 10, 11, 16})  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INTEGER = frozenset({2, 3, 4, 5, 6, 7, 12, 13})  # UINT8 INT8 UINT16 INT16 INT32 INT64 UINT32 UINT64


def tensor_types(model: Any) -> dict[str, int]:
    """Element type of every tensor of ``model`` (ONNX shape inference)."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    types = {init.name: init.data_type for init in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type"):
            types[info.name] = info.type.tensor_type.elem_type
    return types


def _cast_to(node: Any) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def _index_math(nodes: list[Any], producers: dict[str, Any], types: dict[str, int]) -> list[str]:
    """Every Cast from floating point to an integer type, and the floating-point nodes (and
    Constants) it is computed from, back to where integers became floats."""
    found: list[str] = []
    for node in nodes:
        if _cast_to(node) not in _INTEGER or types.get(node.input[0]) not in _FLOATING:
            continue
        chain, frontier, seen = [node], [node.input[0]], {node.name}
        while frontier:
            source = producers.get(frontier.pop())
            if source is None or source.name in seen:
                continue
            chain.append(source)
            seen.add(source.name)
            if source.op_type == "Cast" and types.get(source.input[0]) in _INTEGER:
                continue  # where the integers became floats
            frontier += [i for i in source.input if i and (types.get(i) in _FLOATING or i in producers)]
        found += [n.name for n in chain]
    return found


def _logits_projection(model: Any, producers: dict[str, Any], initializers: dict[str, Any]) -> list[str]:
    """From the ``logits`` output back to the MatMul (or Gemm) that projects onto the vocabulary,
    and the Mul by a scalar that rescales its input (T5 v1.0's tied embeddings); [] when the graph
    has no such output or no projection within a few nodes of it."""
    if not any(o.name == LOGITS_OUTPUT for o in model.graph.output):
        return []
    found, node = [], producers.get(LOGITS_OUTPUT)
    for _ in range(4):  # Optimum's T5 decoders end in the MatMul itself; allow a Cast or Reshape after it
        if node is None:
            return []
        found.append(node)
        if node.op_type in ("MatMul", "Gemm"):
            break
        node = next((producers[i] for i in node.input if i in producers), None)
    else:
        return []
    activation = next((producers[i] for i in node.input if i in producers and i not in initializers), None)
    if activation is not None and activation.op_type == "Mul":
        if any(_scalar(i, producers, initializers) is not None for i in activation.input):
            found.append(activation)
    return [n.name for n in found]


def fp32_nodes(model: Any, patterns: Iterable[str]) -> dict[str, list[str]]:
    """ONNX node names per pattern of a loaded ``onnx.ModelProto``.

    ``t5_layer_norm``: every node of each T5 layer norm (found from its ``Pow``); ``residual_add``:
    the ``Add`` nodes that add a sublayer's output to the layer norm's input (the residual stream);
    ``index_math``: each floating-point computation cast to an integer index (T5's relative
    position buckets), from the cast back to the integers it started from; ``logits_projection``:
    the MatMul that makes the ``logits`` output and the scalar rescale of its input, if any.
    Raises EngineBuildError for an unknown pattern.
    """
    patterns = tuple(patterns)
    unknown = sorted(set(patterns) - set(KNOWN_PATTERNS))
    if unknown:
        raise EngineBuildError(f"unknown FP32 pattern(s) {unknown}; known: {list(KNOWN_PATTERNS)}")
    nodes = list(model.graph.node)
    producers, consumers = _index(nodes)
    initializers = {init.name: init for init in model.graph.initializer}
    weights = set(initializers)
    found: dict[str, list[str]] = {p: [] for p in patterns}
    if INDEX_MATH in found:
        found[INDEX_MATH] = _index_math(nodes, producers, tensor_types(model))
    if LOGITS_PROJECTION in found:
        found[LOGITS_PROJECTION] = _logits_projection(model, producers, initializers)
    for node in nodes:
        # x ** 2 is the layer norm's mean of squares; gated GELU's tanh form has x ** 3.
        if node.op_type != "Pow" or _scalar(node.input[1], producers, initializers) != 2.0:
            continue
        chain = _layer_norm_chain(node, consumers, weights)
        stream = {node.input[0]}
        source = producers.get(node.input[0])
        if source is not None and source.op_type == "Cast":  # the norm's .to(float32)
            chain.insert(0, source)
            stream.add(source.input[0])
        if T5_LAYER_NORM in found:
            found[T5_LAYER_NORM] += [n.name for n in chain]
        if RESIDUAL_ADD in found:
            in_chain = {n.name for n in chain}
            found[RESIDUAL_ADD] += [
                n.name for t in stream for n in consumers.get(t, []) if n.op_type == "Add" and n.name not in in_chain
            ]
    return {p: list(dict.fromkeys(names)) for p, names in found.items()}
