"""Precision plans written into ONNX graphs, run here in ONNX Runtime: the graphs engines are built from."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from conftest_export import one_thread, scratch_dir, shipped_spec, tiny_t5, tiny_t5_export  # noqa: F401

from tritonize.engines.precision import INDEX_MATH, RESIDUAL_ADD, T5_LAYER_NORM, Family, precision_plan
from tritonize.engines.precision_graph import emulate_bf16, write_precision_graph
from tritonize.engines.runners import stand_in_model
from tritonize.errors import EngineBuildError
from tritonize.spec import Precision

FLOAT, FLOAT16, BFLOAT16 = 1, 10, 16  # onnx.TensorProto


@functools.cache
def _encoder_batches(demo: str) -> list[dict]:
    """The gate's token batches of the built-in corpus for the tiny T5 demo's deployment."""
    from tritonize.corpus import builtin_for_labels
    from tritonize.engines.validate import token_batches
    from tritonize.pipeline.checkpoints import save_tokenizer_json

    model = shipped_spec(demo)
    tokenizer_json, pad = save_tokenizer_json(str(tiny_t5(demo)), scratch_dir(f"tokenizer-{demo}"))
    return token_batches(tokenizer_json, model, pad, [e.text for e in builtin_for_labels(model.labels)])


def _max_encoder_diff(fp32_path, graph_bytes: bytes, batches: list[dict]) -> float:
    import onnxruntime as ort

    reference = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(graph_bytes, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in batches:
        want, got = reference.run(None, batch)[0], candidate.run(None, batch)[0]
        assert got.dtype == np.float32 and np.isfinite(got).all()
        attended = batch["attention_mask"].astype(bool)  # what the gate compares
        worst = max(worst, float(np.abs(want - got)[attended].max()))
    return worst


def _io_types(model) -> set[int]:
    return {t.type.tensor_type.elem_type for t in (*model.graph.input, *model.graph.output)}


@pytest.mark.usefixtures("one_thread")
def test_fp16_t5_graph_keeps_fp32_io_and_its_islands_and_passes_the_gate_tolerance():
    import onnx

    exported = tiny_t5_export("t5-small")
    plan = precision_plan(Family.T5, "encoder", Precision.FP16)
    out = scratch_dir("precision-fp16") / "encoder.onnx"
    graph = write_precision_graph(exported.paths["encoder"], plan, out)
    model = onnx.load(str(out))
    assert _io_types(model) <= {FLOAT, 7}  # FP32 and INT64 as the Triton config declares
    assert {i.data_type for i in model.graph.initializer} >= {FLOAT16}
    kept = set(graph.fp32_nodes)
    assert kept and kept <= {n.name for n in model.graph.node}
    typed = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    pows = [n for n in model.graph.node if n.op_type == "Pow"]
    assert pows and all(n.name in kept and typed[n.output[0]] == FLOAT for n in pows)
    # island to island in FP32: x**2 reaches the mean without a round trip through FP16 (it overflows there)
    means = [n for n in model.graph.node if n.op_type == "ReduceMean" and n.name in kept]
    assert {m.input[0] for m in means} == {p.output[0] for p in pows}
    tolerance = shipped_spec("t5-small").gate.engine_tolerance[Precision.FP16]
    assert 0 < _max_encoder_diff(exported.paths["encoder"], out.read_bytes(), _encoder_batches("t5-small")) <= tolerance


@pytest.mark.usefixtures("one_thread")
def test_position_buckets_in_fp16_move_the_t5_encoder_beyond_the_gate_and_fp32_buckets_keep_it_inside():
    """T5's relative position buckets are float math truncated to an index: in FP16 neighbouring
    distances change bucket and every attention gets another position bias."""
    exported = tiny_t5_export("t5-small")
    plan = precision_plan(Family.T5, "encoder", Precision.FP16)
    assert INDEX_MATH in plan.keep_fp32
    without = dataclasses.replace(plan, keep_fp32=(T5_LAYER_NORM, RESIDUAL_ADD))
    tolerance = shipped_spec("t5-small").gate.engine_tolerance[Precision.FP16]
    diffs = {}
    for name, candidate in (("with", plan), ("without", without)):
        out = scratch_dir(f"buckets-{name}") / "encoder.onnx"
        write_precision_graph(exported.paths["encoder"], candidate, out)
        diffs[name] = _max_encoder_diff(exported.paths["encoder"], out.read_bytes(), _encoder_batches("t5-small"))
    assert diffs["without"] > tolerance >= diffs["with"], diffs


@pytest.mark.usefixtures("one_thread")
def test_bf16_graph_takes_values_from_fp32_and_runs_emulated_within_the_bf16_tolerance():
    import ml_dtypes
    import onnx
    from onnx import numpy_helper

    exported = tiny_t5_export("flan-t5-small")
    plan = precision_plan(Family.T5_GATED, "encoder", Precision.BF16, (9, 0))
    out = scratch_dir("precision-bf16") / "encoder.onnx"
    graph = write_precision_graph(exported.paths["encoder"], plan, out)
    assert graph.precision is Precision.BF16 and graph.fp32_nodes  # the position buckets
    model, original = onnx.load(str(out)), onnx.load(str(exported.paths["encoder"]))
    assert _io_types(model) <= {FLOAT, 7}
    fp32 = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    bf16 = [t for t in model.graph.initializer if t.data_type == BFLOAT16]
    assert bf16 and not [t for t in model.graph.initializer if t.data_type == FLOAT16]
    for tensor in bf16:
        rounded = fp32[tensor.name].astype(ml_dtypes.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(numpy_helper.to_array(tensor).astype(np.float32), rounded)
    emulated = emulate_bf16(model)
    assert not any(n.op_type not in ("Cast", "Constant") and BFLOAT16 in _node_types(emulated, n) for n in emulated.graph.node)
    diff = _max_encoder_diff(exported.paths["encoder"], stand_in_model(out, Precision.BF16), _encoder_batches("flan-t5-small"))
    assert 1e-4 < diff <= shipped_spec("flan-t5-small").gate.engine_tolerance[Precision.BF16]  # rounded, not FP32


def _node_types(model, node) -> set[int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.input, *inferred.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return {types.get(t) for t in (*node.input, *node.output) if t}


def test_plan_keeping_fp32_patterns_the_graph_lacks_is_an_error(tmp_path):
    """Another exporter's graph without T5's layer norm: the FP16 plan must not build it all-FP16."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"), helper.make_node("Relu", ["h"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [weight],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    plan = precision_plan(Family.T5, "encoder", Precision.FP16)
    with pytest.raises(EngineBuildError, match=r"keeps t5_layer_norm, residual_add, index_math in FP32.*no such node"):
        write_precision_graph(path, plan, tmp_path / "fp16.onnx")
    encoder_plan = precision_plan(Family.ENCODER, "model", Precision.FP16)
    written = write_precision_graph(path, encoder_plan, tmp_path / "fp16.onnx")  # keeps nothing: builds
    assert written.fp32_nodes == () and {i.data_type for i in onnx.load(str(written.path)).graph.initializer} == {FLOAT16}
