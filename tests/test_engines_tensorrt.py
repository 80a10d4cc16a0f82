"""The TensorRT build: what runs without libnvinfer here, and real builds marked tensorrt/gpu.

The marked tests run in the engines image (the TensorRT of the pinned NGC release, a GPU);
here they skip with the reason (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tritonize.engines.plan import engine_plan
from tritonize.engines.precision import Family
from tritonize.engines.profiles import axis_ranges
from tritonize.engines.tensorrt_build import (
    TIMING_CACHE_PATTERN,
    build_settings,
    io_mismatches,
    polygraphy_config,
    timing_cache_name,
)
from tritonize.errors import ProfileShapeError
from tritonize.export.tensors import sequence_classification_graph
from tritonize.spec import Precision, load_spec

MODEL = load_spec().get("distilbert_emotion")
PLAN = engine_plan(MODEL, "distilbert_emotion_model", sequence_classification_graph(6), Family.ENCODER,
                   axis_ranges(MODEL, 16))


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16])
def test_build_settings_are_strongly_typed_without_tf32_on_10_and_11(precision):
    plan = dataclasses.replace(PLAN, precision=dataclasses.replace(PLAN.precision, precision=precision))
    on_10, on_11 = build_settings(plan, "10.13.3.9"), build_settings(plan, "11.4.0.106")
    assert on_10.strongly_typed and not on_11.strongly_typed  # 11: every network is, the flag is ignored
    assert on_10.tf32 is on_11.tf32 is False
    assert on_10.workspace_bytes == MODEL.engine.workspace_mb << 20 and on_10.profiles == plan.profiles


def test_polygraphy_config_carries_the_plan_profiles_and_clears_tf32():
    """The CreateConfig the build hands Polygraphy, constructed as the build does (no TensorRT needed)."""
    config = polygraphy_config(build_settings(PLAN, "10.13.3.9"))
    assert config.tf32 is False and not (config.fp16 or config.bf16 or config.int8)
    assert config.precision_constraints is None  # no weak typing
    (profile,) = config.profiles
    for tensor in PLAN.profiles:
        shapes = profile[tensor.name]
        assert (tuple(shapes.min), tuple(shapes.opt), tuple(shapes.max)) == (tensor.min, tensor.opt, tensor.max)


def test_timing_cache_per_tensorrt_release_and_compute_capability_kept_by_staging(tmp_path: Path):
    from tritonize.pipeline.staging import Staging

    names = {
        timing_cache_name("10.13.3.9", (9, 0)),
        timing_cache_name("10.13.3.9", (8, 0)),
        timing_cache_name("11.4.0.106", (9, 0)),
    }
    assert len(names) == 3 and timing_cache_name("10.13.3.1", (9, 0)) == timing_cache_name("10.13.3.9", (9, 0))
    live = tmp_path / "model_repository"
    live.mkdir()
    for name in (*names, "build_report.json"):
        (live / name).write_bytes(b"x")
    staged = Staging(live, merge=False).begin(keep_files=(TIMING_CACHE_PATTERN,))
    assert {p.name for p in staged.iterdir()} == names


def test_io_mismatches_compare_engine_tensors_with_declared_ones():
    graph = sequence_classification_graph(6)
    good = [("input_ids", "INT64"), ("attention_mask", "INT64"), ("logits", "FLOAT")]
    assert io_mismatches(good, graph) == []
    bad = [("input_ids", "INT32"), ("logits", "HALF"), ("extra", "FLOAT")]
    problems = io_mismatches(bad, graph)
    assert "input_ids: the engine has TYPE_INT32, the Triton config declares TYPE_INT64" in problems
    assert "logits: the engine has TYPE_FP16, the Triton config declares TYPE_FP32" in problems
    assert "engine tensor extra is not declared for model" in problems
    assert "declared tensor attention_mask is missing from the engine" in problems


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_import_tensorrt_raises_unavailable_when_not_installed():
    from tritonize.engines.tensorrt_build import TensorRTUnavailable, import_tensorrt

    with pytest.raises(TensorRTUnavailable, match="not installed"):
        import_tensorrt()


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.triton
def test_gpu_build_makes_validated_engines_and_reuses_them_when_unchanged(tmp_path: Path, tritonize_cache: Path):
    """Full gpu build of the tiny DistilBERT and t5-small: engines built, validated against the
    FP32 ONNX (within the spec's tolerance, agreement >= min_agreement), build info beside each,
    `engines check` passes here; a second build reuses every engine (cache key unchanged)."""
    import tensorrt

    from tritonize.cli import main
    from tritonize.engines.local import gpus
    from tritonize.engines.tensorrt_runner import tensorrt_step
    from tritonize.pipeline import BuildOptions, build
    from tritonize.repository.report import ClassifierGate, EngineStatus, Text2TextGate
    from tritonize.spec import Target, load_spec

    out = tmp_path / "repo"
    out.mkdir()
    cache = out / timing_cache_name(str(tensorrt.__version__), gpus()[0].compute_capability)
    cache.write_bytes(b"a timing cache from somewhere else")  # must not fail the build
    options = BuildOptions(spec=load_spec(), out=out, target=Target.GPU, demo="tiny", cache_dir=tritonize_cache,
                           only=("distilbert_emotion", "t5_small_emotion"))
    report = build(options)
    gate, t5_gate = (report.models[n].accuracy_gate for n in ("distilbert_emotion", "t5_small_emotion"))
    assert isinstance(gate, ClassifierGate) and gate.top1_agreement >= 0.99 and not gate.rehearsed
    assert isinstance(t5_gate, Text2TextGate) and t5_gate.token_agreement >= 0.99
    for step in ("distilbert_emotion_model", "t5_small_emotion_encoder", "t5_small_emotion_decoder_with_past"):
        info = json.loads((out / step / "1" / "build_info.json").read_text())
        assert info["plan"]["step"] == step and (out / step / "1" / "model.plan").stat().st_size > 0
    built = report.models["t5_small_emotion"].engines["t5_small_emotion_encoder"]
    assert built.engine is EngineStatus.BUILT and built.settings["tf32"] is False and built.graph.fp32_nodes > 0
    assert cache.read_bytes() != b"a timing cache from somewhere else" and cache.stat().st_size > 0
    assert main(["engines", "check", "--repository", str(out)]) == 0
    decoder = out / "t5_small_emotion_decoder" / "1" / "model.plan"
    with tensorrt_step("t5_small_emotion_decoder", decoder) as step:
        feeds = {p.name: np.zeros(p.min, np.float32 if "hidden" in p.name else np.int64) for p in step.profiles}
        assert step(feeds, ["logits"])["logits"].shape[0] == 1
        (ids,) = [p for p in step.profiles if p.name == "input_ids"]
        feeds["input_ids"] = np.ones((1, ids.max[1] + 1), np.int64)  # wider than the longest label
        with pytest.raises(ProfileShapeError, match="input_ids"):
            step(feeds, ["logits"])
    again = build(options)
    engines = again.models["t5_small_emotion"].engines
    assert {e.engine for e in engines.values()} == {EngineStatus.REUSED}
    if os.environ.get("TRITONIZE_KEEP_GPU_REPOSITORY"):
        shutil.copytree(out, os.environ["TRITONIZE_KEEP_GPU_REPOSITORY"], dirs_exist_ok=True)
