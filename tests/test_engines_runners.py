"""Profiled steps (the runner interface of engines and their rehearsal stand-ins) and the gate's
batching: what overflowed the engine profile of the shipped T5 deployments, run here."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from conftest_export import one_thread, scratch_dir, shipped_spec, tiny_t5, tiny_t5_export  # noqa: F401

from tritonize.engines.profiles import AxisRange, TensorProfile
from tritonize.engines.runners import ProfiledStep, ort_stand_in
from tritonize.engines.validate import BATCH_SIZES, token_batches
from tritonize.errors import EngineBuildError, ProfileShapeError
from tritonize.repository.report import Text2TextGate
from tritonize.spec import Precision

SIX_LABELS = "t5-small"  # t5_small_emotion: six labels, max_batch_size 32 in the shipped spec


def _add_one_graph(path: Path) -> Path:
    """y = x + 1 with mask passed through: a [batch, sequence] graph to run under a profile."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    nodes = [helper.make_node("Add", ["x", "one"], ["y"]), helper.make_node("Identity", ["mask"], ["mask_out"])]
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes, "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims), helper.make_tensor_value_info("mask", TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims), helper.make_tensor_value_info("mask_out", TensorProto.INT64, dims)],
        [one],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


PROFILES = (
    TensorProfile("x", (AxisRange(1, 2, 4), AxisRange(2, 4, 8))),
    TensorProfile("mask", (AxisRange(1, 2, 4), AxisRange(2, 4, 8))),
)


def _feeds(rows: int, length: int) -> dict[str, np.ndarray]:
    x = np.arange(rows * length, dtype=np.float32).reshape(rows, length)
    return {"x": x, "mask": np.ones((rows, length), np.int64)}


def test_profiled_step_splits_rows_at_the_profile_max_and_joins_outputs_in_order(tmp_path: Path):
    step = ort_stand_in("add_one", _add_one_graph(tmp_path / "g.onnx"), Precision.FP32, PROFILES)
    feeds = _feeds(10, 5)  # 10 rows > max 4: three calls of 4, 4, 2
    with step:
        out = step(feeds, ["y"])
        np.testing.assert_array_equal(out["y"], feeds["x"] + 1)
        assert step.runner.is_active
    assert not step.runner.is_active  # closed on exit


@pytest.mark.parametrize(("rows", "length", "bad"), [(3, 9, [3, 9]), (3, 1, [3, 1])])
def test_shape_outside_the_profile_raises_the_typed_profile_error_before_running(tmp_path: Path, rows, length, bad):
    step = ort_stand_in("add_one", _add_one_graph(tmp_path / "g.onnx"), Precision.FP32, PROFILES)
    with step, pytest.raises(ProfileShapeError) as raised:
        step(_feeds(rows, length), ["y"])
    error = raised.value
    assert isinstance(error, EngineBuildError) and error.tensor == "x" and list(error.shape) == bad
    assert str(error) == (f"add_one: input x has shape {bad}, outside the engine's optimization profile "
                          "(min [1, 2], max [4, 8])")


def test_profiled_step_refuses_inputs_that_disagree_on_batch_or_are_missing(tmp_path: Path):
    step = ort_stand_in("add_one", _add_one_graph(tmp_path / "g.onnx"), Precision.FP32, PROFILES)
    feeds = _feeds(3, 4)
    with step:
        with pytest.raises(EngineBuildError, match="disagree on the batch size"):
            step({**feeds, "mask": feeds["mask"][:2]}, ["y"])
        with pytest.raises(EngineBuildError, match="input mask was not fed"):
            step({"x": feeds["x"]}, ["y"])


def test_profiled_step_works_with_any_polygraphy_runner(tmp_path: Path):
    """The runner interface is Polygraphy's BaseRunner: the same step wraps a runner built by hand."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    runner = OnnxrtRunner(SessionFromOnnx(str(_add_one_graph(tmp_path / "g.onnx"))))
    with ProfiledStep("add_one", runner, PROFILES) as step:
        assert step(_feeds(6, 3), ["mask_out"])["mask_out"].shape == (6, 3)


# -- the gate, batched as Triton batches --------------------------------------------------------


@functools.cache
def _tokenizer(demo: str) -> tuple[Path, int]:
    from tritonize.pipeline.checkpoints import save_tokenizer_json

    return save_tokenizer_json(str(tiny_t5(demo)), scratch_dir(f"runner-tokenizer-{demo}"))


def test_gate_batches_never_exceed_max_batch_size():
    """Triton never sends a step more rows than max_batch_size; neither may the gate."""
    from tritonize.corpus import builtin_for_labels

    model = shipped_spec(SIX_LABELS).replace(max_batch_size=4)
    assert max(BATCH_SIZES) > model.batching.max_batch_size
    texts = [e.text for e in builtin_for_labels(model.labels)][:40]
    tokenizer_json, pad = _gate_tokenizer()
    batches = token_batches(tokenizer_json, model, pad, texts)
    sizes = [len(b["input_ids"]) for b in batches]
    assert max(sizes) == model.batching.max_batch_size and sum(sizes) == len(texts)
    assert {1, 3, 4} <= set(sizes)  # the cycle still varies the batch size


def _gate_tokenizer() -> tuple[Path, int]:
    tokenizer_json, pad = _tokenizer(SIX_LABELS)
    return tokenizer_json, pad


def _rehearsed_t5(model, labels_in_plan: bool = True):
    """Plans of the tiny T5 demo for ``model``, compiled as the rehearsal compiles them."""
    from transformers import AutoConfig, AutoTokenizer

    from tritonize.corpus import builtin_for_labels
    from tritonize.export.tensors import T5_COMPONENTS
    from tritonize.pipeline.compile import CompileContext, Exported, compile_graphs
    from tritonize.pipeline.plans import gpu_plans
    from tritonize.repository import layout
    from tritonize.spec import Target

    checkpoint = str(tiny_t5(SIX_LABELS))
    exported = tiny_t5_export(SIX_LABELS)
    names = layout.StepNames(model.name)
    texts = [e.text for e in builtin_for_labels(model.labels)]
    graphs = {names.component(c): exported.graphs[c] for c in T5_COMPONENTS}
    labels = model.labels if labels_in_plan else ()
    plans = gpu_plans(model, AutoConfig.from_pretrained(checkpoint), graphs, AutoTokenizer.from_pretrained(checkpoint),
                      texts, labels)
    items = {c: Exported(step=names.component(c), graph=exported.graphs[c], onnx=exported.paths[c]) for c in T5_COMPONENTS}
    workdir = scratch_dir(f"rehearsed-{model.batching.max_batch_size}-{labels_in_plan}")
    context = CompileContext(model=model, target=Target.GPU, workdir=workdir, plans=plans, rehearse=True)
    return compile_graphs(context, items), exported, texts


def _gate(model, compiled, exported, texts):
    from tritonize.backends.t5_decoding import label_token_ids
    from tritonize.backends.tokenize_step import load_tokenizer
    from tritonize.engines.validate import ort_step, validate_t5_steps

    tokenizer_json, pad = _gate_tokenizer()
    decoding = {"eos_token_id": exported.eos_token_id, "decoder_start_token_id": exported.decoder_start_token_id,
                "num_decoder_layers": exported.num_decoder_layers, "pad_token_id": pad}
    tokenizer = load_tokenizer(str(tokenizer_json.parent), model.max_input_length)
    with compiled.candidate_steps() as candidates:
        return validate_t5_steps(
            model.name, {c: ort_step(p) for c, p in exported.paths.items()}, candidates,
            token_batches(tokenizer_json, model, pad, texts), decoding, label_token_ids(tokenizer, model.labels),
            4, compiled.gate(model),
        )


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("max_batch_size", [32, 4])
def test_rehearsed_gate_scores_six_labels_within_the_profiles_of_the_fp16_engines(max_batch_size):
    """Label scoring sends rows x labels (8 x 6 = 48 > 32; 4 x 6 = 24 > 4) to the decoder: the
    profiled step splits them at the profile's max, and the FP16 graphs pass the gate."""
    model = shipped_spec(SIX_LABELS).replace(max_batch_size=max_batch_size, opt_batch_size=None)
    compiled, exported, texts = _rehearsed_t5(model)
    assert {p.precision.precision for p in compiled.plans.values()} == {Precision.FP16}
    decoder = {t.name: t for t in compiled.plans["decoder"].profiles}["input_ids"]
    assert decoder.max[0] == max_batch_size < 8 * len(model.labels)
    figures = compiled.gate_entry(Text2TextGate.from_dict(_gate(model, compiled, exported, texts[:24])))
    assert figures.rehearsed is True and "no substitute for the real gate" in (figures.note or "").lower()
    assert figures.token_agreement >= model.gate.min_agreement
    assert 0 < figures.encoder_max_abs_diff <= model.gate.engine_tolerance[Precision.FP16]


@pytest.mark.usefixtures("one_thread")
def test_rehearsed_gate_that_exceeds_a_profile_fails_with_the_typed_profile_error():
    """Plans made without the labels give the decoder a one-token profile; label scoring then
    feeds whole labels: the stand-in refuses the shape as TensorRT would, before running."""
    model = shipped_spec(SIX_LABELS).replace(max_batch_size=4, opt_batch_size=None)
    compiled, exported, texts = _rehearsed_t5(model, labels_in_plan=False)
    with pytest.raises(ProfileShapeError, match=r"_decoder: input input_ids has shape \[\d+, [2-9]\], outside"):
        _gate(model, compiled, exported, texts[:8])
