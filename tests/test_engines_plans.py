"""Engine plans without TensorRT: profiles from the declared tensors, precision plans, FP32 islands."""

from __future__ import annotations

import pytest
from conftest_export import one_thread, tiny_t5_export  # noqa: F401

from tritonize.engines.plan import EnginePlan, engine_plan
from tritonize.engines.precision import (
    INDEX_MATH,
    LOGITS_PROJECTION,
    RESIDUAL_ADD,
    T5_ISLANDS,
    T5_LAYER_NORM,
    Family,
    family_of,
    fp32_nodes,
    precision_plan,
)
from tritonize.engines.profiles import AxisRange, axis_ranges, graph_profiles, typical_bucket
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import sequence_classification_graph, t5_graphs
from tritonize.spec import Precision, Target, load_spec

SPEC = load_spec()


def _t5_config(demo: str, size: str = "tiny"):
    from tritonize.demo.t5 import t5_config

    return t5_config(demo, size, vocab_size=2000)


def _plans(model, config, graphs, opt=16, label=2) -> dict[str, EnginePlan]:
    ranges = axis_ranges(model, opt, label)
    return {name: engine_plan(model, name, g, family_of(config), ranges) for name, g in graphs.items()}


def test_axis_range_rejects_unordered_bounds():
    for bad in ((0, 1, 2), (2, 1, 3), (1, 4, 3)):
        with pytest.raises(EngineBuildError, match="min <= opt <= max"):
            AxisRange(*bad)


@pytest.mark.parametrize("model", SPEC.models, ids=lambda m: m.name)
def test_profiles_cover_every_input_with_batch_up_to_max_batch_size_when_from_shipped_spec(model):
    if model.is_generative:
        config = _t5_config(model.demo)
        graphs = t5_graphs(config)
    else:
        graphs = {"model": sequence_classification_graph(6)}
    ranges = axis_ranges(model, typical_bucket(model, [12, 14, 30]), 3)
    for component, graph in graphs.items():
        profiles = graph_profiles(graph, ranges)
        assert [p.name for p in profiles] == [t.name for t in graph.inputs], component
        for profile, decl in zip(profiles, graph.inputs):
            assert len(profile.min) == len(decl.axes)
            assert all(lo <= op <= hi for lo, op, hi in zip(profile.min, profile.opt, profile.max))
            assert profile.min[0] == 1 and profile.max[0] == model.batching.max_batch_size  # the batch axis
            for i, axis in enumerate(decl.axes):
                if isinstance(axis, int):
                    assert profile.min[i] == profile.opt[i] == profile.max[i] == axis


def test_t5_profiles_take_sizes_from_config_and_ranges_from_spec():
    model = SPEC.get("t5_small_emotion")
    config = _t5_config("t5-small")
    plans = _plans(model, config, t5_graphs(config), opt=32, label=3)
    past = {p.name: p for p in plans["decoder_with_past"].profiles}["past_key_values.0.decoder.key"]
    heads, head_dim = config.num_heads, config.d_kv
    assert past.min == (1, heads, 1, head_dim)
    assert past.max == (model.batching.max_batch_size, heads, model.generation.max_new_tokens_limit + 3, head_dim)
    cross = {p.name: p for p in plans["decoder_with_past"].profiles}["past_key_values.0.encoder.key"]
    assert cross.min[2] == model.length_buckets[0] and cross.max[2] == model.bucket_for(model.max_input_length)
    decoder_ids = {p.name: p for p in plans["decoder"].profiles}["input_ids"]
    assert decoder_ids.min == (1, 1) and decoder_ids.max == (model.batching.max_batch_size, 3)  # label scoring width
    encoder_ids = {p.name: p for p in plans["encoder"].profiles}["input_ids"]
    assert encoder_ids.opt == (model.batching.max_batch_size, 32)


def test_profiles_move_when_spec_changes():
    model = SPEC.get("distilbert_emotion")
    changed = model.replace(
        max_batch_size=8, opt_batch_size=4, length_buckets=(32, 64, 128), max_input_length=100
    )
    graph = sequence_classification_graph(6)
    before = graph_profiles(graph, axis_ranges(model, 16))[0]
    after = graph_profiles(graph, axis_ranges(changed, 16))[0]
    assert before.max == (32, 512) and before.min == (1, 16)
    assert after.min == (1, 32) and after.opt == (4, 32) and after.max == (8, 128)


def test_typical_bucket_is_the_most_common_bucket():
    model = SPEC.get("distilbert_emotion")
    assert typical_bucket(model, [10, 12, 20, 22, 23, 100]) == 24
    assert typical_bucket(model, []) == model.length_buckets[0]


def test_graph_profiles_raise_for_axis_without_range():
    graph = sequence_classification_graph(6)
    with pytest.raises(EngineBuildError, match="sequence"):
        graph_profiles(graph, {"batch": AxisRange(1, 2, 4)})


def test_family_of_demo_configs_at_real_sizes():
    from tritonize.demo.distilbert import distilbert_config

    assert family_of(distilbert_config("full", ("a", "b"), 100)) is Family.ENCODER
    assert family_of(_t5_config("t5-small", "full")) is Family.T5
    assert family_of(_t5_config("t5-base", "full")) is Family.T5_WIDE
    assert family_of(_t5_config("flan-t5-small", "full")) is Family.T5_GATED


@pytest.mark.parametrize(
    ("family", "component", "requested", "cc", "precision", "islands"),
    [
        (Family.ENCODER, "model", Precision.FP16, (9, 0), Precision.FP16, ()),
        (Family.T5, "encoder", Precision.FP16, (9, 0), Precision.FP16, T5_ISLANDS),
        (Family.T5, "decoder_with_past", Precision.FP16, (7, 5), Precision.FP16, (*T5_ISLANDS, LOGITS_PROJECTION)),
        (Family.T5_WIDE, "encoder", Precision.FP16, (9, 0), Precision.FP32, ()),
        (Family.T5_WIDE, "decoder", Precision.FP16, (9, 0), Precision.FP16, (*T5_ISLANDS, LOGITS_PROJECTION)),
        (Family.T5_GATED, "encoder", Precision.BF16, (8, 0), Precision.BF16, (T5_LAYER_NORM, INDEX_MATH)),
        (Family.T5_GATED, "encoder", Precision.BF16, (7, 5), Precision.FP32, ()),
        (Family.T5_WIDE, "decoder", Precision.BF16, None, Precision.BF16, (T5_LAYER_NORM, INDEX_MATH, LOGITS_PROJECTION)),
        (Family.T5_GATED, "decoder_with_past", Precision.BF16, (9, 0), Precision.BF16,
         (T5_LAYER_NORM, INDEX_MATH, LOGITS_PROJECTION)),
        (Family.ENCODER, "model", Precision.BF16, (9, 0), Precision.BF16, ()),
        (Family.ENCODER, "model", Precision.FP32, (9, 0), Precision.FP32, ()),
    ],
)
def test_precision_plan_per_family_and_compute_capability(family, component, requested, cc, precision, islands):
    plan = precision_plan(family, component, requested, cc)
    assert plan.precision is precision and plan.keep_fp32 == islands and plan.reason
    assert "builder_flags" not in plan.to_dict()  # precision lives in the graph, built strongly typed


def test_precision_plan_refuses_fp16_for_flan_t5():
    with pytest.raises(EngineBuildError, match="bf16 or fp32"):
        precision_plan(Family.T5_GATED, "decoder", Precision.FP16, (9, 0))


def test_shipped_spec_plans_every_deployment_for_gpu():
    for model in SPEC.models:
        config = _t5_config(model.demo, "full") if model.is_generative else None
        family = family_of(config) if config is not None else Family.ENCODER
        for component in ("encoder", "decoder") if model.is_generative else ("model",):
            plan = precision_plan(family, component, model.engine.precision[Target.GPU], (9, 0))
            assert plan.precision in (Precision.FP16, Precision.BF16, Precision.FP32)


def test_engine_plan_round_trips_through_dict_and_resolves_for_gpu():
    model = SPEC.get("flan_t5_small_emotion")
    config = _t5_config("flan-t5-small")
    plan = _plans(model, config, t5_graphs(config))["encoder"]
    assert EnginePlan.from_dict(plan.to_dict()) == plan
    assert plan.with_compute_capability((7, 5)).precision.precision is Precision.FP32
    assert plan.with_compute_capability((9, 0)).precision.precision is Precision.BF16
    assert "input_ids: min [1, 16]" in plan.describe()


@pytest.mark.parametrize("demo", ["t5-small", "flan-t5-small", "t5-base"])
@pytest.mark.usefixtures("one_thread")
def test_fp32_islands_are_found_in_exported_tiny_t5_graphs(demo):
    """Every T5 layer norm (2 per encoder block + final, 3 per decoder block + final) and every
    residual add is found; gated GELU's x**3 is not mistaken for a layer norm; the one relative
    position bucket computation (first block's self-attention) is found from its int64 cast; the
    decoders' logits come from one MatMul on the vocabulary, whose input T5 v1.0 (tied
    embeddings) first rescales by a scalar Mul; the encoder has no logits."""
    import onnx

    exported = tiny_t5_export(demo)
    config = _t5_config(demo)
    norms = {"encoder": 2 * config.num_layers + 1, "decoder": 3 * config.num_decoder_layers + 1}
    norms["decoder_with_past"] = norms["decoder"]
    residuals = {"encoder": 2 * config.num_layers, "decoder": 3 * config.num_decoder_layers}
    residuals["decoder_with_past"] = residuals["decoder"]
    for component, path in exported.paths.items():
        model = onnx.load(str(path))
        by_name = {n.name: n for n in model.graph.node}
        found = fp32_nodes(model, (*T5_ISLANDS, LOGITS_PROJECTION))
        ops = [by_name[n].op_type for n in found[T5_LAYER_NORM]]
        for op in ("Pow", "ReduceMean", "Sqrt", "Div"):
            assert ops.count(op) == norms[component], (component, op)
        assert all(by_name[n].op_type == "Add" for n in found[RESIDUAL_ADD])
        assert len(found[RESIDUAL_ADD]) == residuals[component], component
        buckets = [by_name[n].op_type for n in found[INDEX_MATH]]
        assert buckets.count("Log") == 1 and buckets.count("Cast") == 2, (component, buckets)  # float in, int out
        projection = [by_name[n].op_type for n in found[LOGITS_PROJECTION]]
        if component == "encoder":
            assert projection == []
        else:
            assert projection == (["MatMul"] if demo.startswith("flan") else ["MatMul", "Mul"]), (component, projection)
            assert by_name[found[LOGITS_PROJECTION][0]].output[0] == "logits"


def test_fp32_nodes_rejects_unknown_pattern():
    with pytest.raises(EngineBuildError, match="unknown FP32 pattern"):
        fp32_nodes(object(), ["softmax"])
