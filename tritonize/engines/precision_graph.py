"""Precision written into the ONNX graph: the FP16 / BF16 graph an engine is built from.

A strongly typed TensorRT network takes every tensor's type from the graph (TensorRT 10.12
deprecated the builder's precision flags and per-layer precision, TensorRT 11 removed them; see
:mod:`tritonize.tensorrt_facts`). So a precision plan is applied here, to the FP32
export, and the engine is built from the result:

* FP16: ONNX Runtime's own converter, ``onnxruntime.transformers.float16.convert_float_to_float16``,
  with ``keep_io_types`` (the engine's I/O stays the FP32 the Triton configs declare) and the
  plan's FP32 islands as its ``node_block_list`` (explicit casts around them).
* BF16: ONNX Runtime has no BF16 converter (its ``use_bfloat16_as_blocked_nodes_dtype`` only
  retypes the *blocked* nodes) and no BF16 compute kernels on the CPU. So the FP16 converter
  decides the structure (which tensors go low precision, where the casts sit) and
  :func:`_retype_bf16` turns FP16 into BF16, taking initializers and constants from the FP32
  export again (rounded to BF16, never through FP16's narrower range).

Because the graph is the plan, the same graph runs here: ONNX Runtime runs the FP16 graph on
the CPU (nodes without FP16 CPU kernels compute in FP32 between FP16 casts, ORT's
``InsertCastTransformer``), and :func:`emulate_bf16` gives ORT the BF16 graph with every BF16
node computed in FP32 between BF16 casts, the same treatment. Rounding at every tensor is the
plan's; the arithmetic inside a node is FP32, as TensorRT's FP16/BF16 kernels accumulate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.engines.precision import PrecisionPlan, fp32_nodes, tensor_types
from tritonize.errors import EngineBuildError
from tritonize.spec import Precision

log = logging.getLogger(__name__)

# onnx.TensorProto element types (onnx/onnx.proto3): the floating-point ones a node may output.
_FLOAT, _FLOAT16, _DOUBLE, _BFLOAT16 = 1, 10, 11, 16
FLOATING_TYPES = frozenset({_FLOAT, _FLOAT16, _DOUBLE, _BFLOAT16})


@dataclass(frozen=True, kw_only=True)
class PrecisionGraph:
    """The graph one engine is built from: its file, precision and the nodes kept in FP32."""

    path: Path
    precision: Precision
    fp32_nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "precision": self.precision.value, "fp32_nodes": len(self.fp32_nodes)}


def island_nodes(model: Any, plan: PrecisionPlan, where: str) -> tuple[str, ...]:
    """The floating-point nodes of ``model`` the plan keeps in FP32 (empty when it keeps none).

    Only nodes that read or write a floating-point tensor are kept: an integer or bool node has
    no precision to keep (a Cast from float to an index reads one, and must read it in FP32).
    Raises EngineBuildError when the plan keeps a pattern and the graph has no node of it
    (another exporter or opset): building it without would drop the plan silently.
    """
    if not plan.keep_fp32:
        return ()
    found = fp32_nodes(model, plan.keep_fp32)
    types = tensor_types(model)
    kept: list[str] = []
    missing = []
    by_name = {n.name: n for n in model.graph.node}
    for pattern, names in found.items():
        floating = [n for n in names if any(types.get(t) in FLOATING_TYPES for t in (*by_name[n].input, *by_name[n].output))]
        if not floating:
            missing.append(pattern)
        kept += floating
    if missing:
        raise EngineBuildError(
            f"{where}: the {plan.precision.value} plan keeps {', '.join(missing)} in FP32, but the graph has no such "
            "node (another exporter or opset?): refusing to build it without its FP32 islands"
        )
    return tuple(dict.fromkeys(kept))


def _retype_bf16(fp16: Any, fp32: Any) -> Any:
    """The FP16-converted ``fp16`` with every FP16 tensor, cast and constant made BF16.

    Initializer and Constant values come from ``fp32`` (by name), rounded to BF16.
    """
    import ml_dtypes
    import numpy as np
    from onnx import numpy_helper

    def bf16(array: Any, name: str) -> Any:
        return numpy_helper.from_array(np.asarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16), name)

    originals = {t.name: t for t in fp32.graph.initializer}
    constants = {n.name: a.t for n in fp32.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"}
    graph = fp16.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == _FLOAT16:
            source = originals.get(init.name, init)
            graph.initializer[i].CopyFrom(bf16(numpy_helper.to_array(source), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type in ("Cast", "EyeLike", "RandomNormal", "RandomUniform") and attr.name in ("to", "dtype"):
                if attr.i == _FLOAT16:
                    attr.i = _BFLOAT16
            elif attr.HasField("t") and attr.t.data_type == _FLOAT16:
                source = constants.get(node.name, attr.t) if node.op_type == "Constant" else attr.t
                attr.t.CopyFrom(bf16(numpy_helper.to_array(source), attr.t.name))
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type == _FLOAT16:
            info.type.tensor_type.elem_type = _BFLOAT16
    return fp16


def join_islands(model: Any) -> Any:
    """Let FP32 islands pass FP32 tensors to each other.

    ORT's converter keeps each blocked node's arithmetic in FP32 but casts every float tensor
    it reads or writes through FP16 (``float16.py``: a Cast to FP16 after each blocked node's
    output, a Cast to FP32 before each blocked node's input), so between two island nodes the
    value is rounded to FP16: x**2 of the layer norm would overflow between Pow and ReduceMean,
    and the position buckets' constants are rounded. Every such FP32 -> FP16 -> FP32 round trip
    is replaced by the FP32 tensor itself; casts left unread are dropped.
    """
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    types = tensor_types(model)

    def casts_to(node: Any, elem_type: int) -> bool:
        return node is not None and node.op_type == "Cast" and any(a.name == "to" and a.i == elem_type for a in node.attribute)

    for node in graph.node:
        for i, name in enumerate(node.input):
            up = producers.get(name)
            if not casts_to(up, _FLOAT):
                continue
            down = producers.get(up.input[0])
            if casts_to(down, _FLOAT16) and types.get(down.input[0]) == _FLOAT:
                node.input[i] = down.input[0]
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for node in graph.node for i in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in read for o in n.output)]
        if not dead:
            return model
        for node in dead:
            graph.node.remove(node)


def topological_sort(model: Any) -> Any:
    """Sort ``model``'s nodes so every input is produced before it is read (ONNX requires the
    order; the FP16 converter appends its casts at the end, and TensorRT's parser reads in order)."""
    graph = model.graph
    ready = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise EngineBuildError(f"graph {graph.name!r}: nodes {[n.name for n in waiting[:3]]} read tensors nothing produces")
        pending = waiting
    nodes = [type(n)() for n in ordered]
    for new, old in zip(nodes, ordered):
        new.CopyFrom(old)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def precision_model(fp32: Any, plan: PrecisionPlan, where: str) -> tuple[Any, tuple[str, ...]]:
    """(the plan's graph, the nodes it keeps in FP32) from the loaded FP32 export ``fp32``."""
    import copy

    if plan.precision is Precision.FP32:
        return fp32, ()
    if plan.precision not in (Precision.FP16, Precision.BF16):
        raise EngineBuildError(f"{where}: no graph conversion for {plan.precision.value}")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    islands = island_nodes(fp32, plan, where)
    converted = convert_float_to_float16(
        copy.deepcopy(fp32), keep_io_types=True, node_block_list=list(islands) or None, disable_shape_infer=False
    )
    converted = join_islands(converted)
    if plan.precision is Precision.BF16:
        converted = _retype_bf16(converted, fp32)
    return topological_sort(converted), islands


def write_precision_graph(fp32_onnx: Path, plan: PrecisionPlan, out: Path) -> PrecisionGraph:
    """Write the plan's graph of ``fp32_onnx`` to ``out`` (the FP32 export itself for FP32 plans).

    Raises EngineBuildError: FP32 islands the graph lacks, or a graph ONNX rejects.
    """
    import onnx

    model = onnx.load(str(fp32_onnx))
    converted, islands = precision_model(model, plan, str(fp32_onnx.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise EngineBuildError(f"{out.name}: the {plan.precision.value} graph is invalid: {exc}") from exc
    onnx.save(converted, str(out))
    log.info("%s: %s graph written (%d nodes kept in FP32)", out.name, plan.precision.value, len(islands))
    return PrecisionGraph(path=out, precision=plan.precision, fp32_nodes=islands)


def emulate_bf16(model: Any) -> Any:
    """``model`` (a BF16 graph) as ONNX Runtime's CPU runs it: every node that reads or writes
    BF16 computes in FP32 between BF16 casts (ORT has no BF16 CPU kernels; its
    ``InsertCastTransformer`` treats FP16 nodes without CPU kernels the same way)."""
    import copy

    from onnx import helper

    types = tensor_types(model)
    model = copy.deepcopy(model)
    graph = model.graph
    nodes, upcast = [], {}
    for node in graph.node:
        bf16_in = [i for i in node.input if i and types.get(i) == _BFLOAT16]
        bf16_out = [o for o in node.output if o and types.get(o) == _BFLOAT16]
        if node.op_type in ("Cast", "Constant") or not (bf16_in or bf16_out):
            nodes.append(node)
            continue
        for name in bf16_in:
            if name not in upcast:
                upcast[name] = f"{name}/as_fp32"
                nodes.append(helper.make_node("Cast", [name], [upcast[name]], to=_FLOAT, name=f"{upcast[name]}/cast"))
        node.input[:] = [upcast.get(i, i) for i in node.input]
        for attr in node.attribute:  # ConstantOfShape's value
            if attr.HasField("t") and attr.t.data_type == _BFLOAT16:
                from onnx import numpy_helper

                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype("float32"), attr.t.name))
        outputs = list(node.output)
        node.output[:] = [f"{o}/fp32_result" if o in bf16_out else o for o in outputs]
        nodes.append(node)
        for name in bf16_out:
            nodes.append(helper.make_node("Cast", [f"{name}/fp32_result"], [name], to=_BFLOAT16, name=f"{name}/round"))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale types of the renamed tensors; ORT infers them again
    return model
