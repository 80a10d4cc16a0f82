"""TensorRT's version-dependent facts, pinned against the real packages: the TensorRT Python
bindings wheel (its extension module, read as bytes: it needs libnvinfer to import) and
Polygraphy's source. Version-arithmetic facts are checked on the values NVIDIA's headers give."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
from pathlib import Path

import pytest

from tritonize import tensorrt_facts as facts

# Names the engine layer calls on TensorRT (tensorrt_build, tensorrt_runner) or Polygraphy calls for it.
BINDING_NAMES = (
    "STRONGLY_TYPED",  # NetworkDefinitionCreationFlag (Polygraphy's NetworkFromOnnxPath(strongly_typed=True))
    "TF32",  # BuilderFlag Polygraphy's CreateConfig(tf32=False) clears
    "WORKSPACE",  # MemoryPoolType
    "set_memory_pool_limit",
    "create_timing_cache",
    "set_timing_cache",
    "get_timing_cache",
    "get_tensor_profile_shape",
    "set_input_shape",
    "get_tensor_shape",
    "get_tensor_mode",
    "get_tensor_name",
    "num_io_tensors",
    "execute_async_v3",
)
WEAK_TYPING_NAMES = ("OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "FP16")


def _bindings() -> tuple[str, bytes]:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tensorrt-cu12-bindings is not installed (test extra)")
    library = next(Path(spec.submodule_search_locations[0]).glob("tensorrt*.so"))
    return importlib.metadata.version("tensorrt-cu12-bindings"), library.read_bytes()


def _has_name(binary: bytes, name: str) -> bool:
    return b"\x00" + name.encode() + b"\x00" in binary


def test_bindings_need_the_nvinfer_soname_of_their_major_version():
    version, binary = _bindings()
    major = facts.version_parts(version)[0]
    assert _has_name(binary, facts.library_name(major))
    assert facts.library_name(major) in facts.nvinfer_sonames()
    others = [m for m in range(8, 13) if m != major]
    assert not any(_has_name(binary, facts.library_name(m)) for m in others)


def test_bindings_carry_every_api_name_the_engine_layer_uses():
    _, binary = _bindings()
    missing = [name for name in BINDING_NAMES if not _has_name(binary, name)]
    assert not missing


def test_weak_typing_names_exist_exactly_where_the_strongly_typed_flag_is_still_needed():
    version, binary = _bindings()
    present = {name: _has_name(binary, name) for name in WEAK_TYPING_NAMES}
    assert set(present.values()) == {facts.strongly_typed_flag(version)}, present


def test_strongly_typed_flag_from_10_and_not_needed_from_11():
    assert facts.strongly_typed_flag("10.0.1") and facts.strongly_typed_flag("10.13.3.9")
    assert not facts.strongly_typed_flag("11.0.0.114") and not facts.strongly_typed_flag("11.4.0.106")
    facts.check_supported("10.0.1")
    facts.check_supported("11.4.0.106")
    for old in ("8.6.1", "9.3.0.1"):
        with pytest.raises(ValueError, match="10.0 or newer"):
            facts.check_supported(old)


@pytest.mark.parametrize(
    ("value", "version"),
    [(101100, "10.11.0"), (101303, "10.13.3"), (110400, "11.4.0"), (100001, "10.0.1"), (8601, "8.6.1")],
)
def test_get_infer_lib_version_decodes_per_headers(value, version):
    """NvInferRuntimeBase.h: major*10000+minor*100+patch from 10.0; major*1000+... in 8.6."""
    assert facts.decode_infer_lib_version(value) == version


def test_same_release_compares_major_minor_patch():
    assert facts.same_release("10.13.3.9", "10.13.3")
    assert not facts.same_release("10.13.3.9", "10.13.2.6")
    assert facts.version_parts("10.11.0.post1") == (10, 11, 0) and facts.release_text("11.4.0.106") == "11.4.0"
    with pytest.raises(ValueError, match="not a TensorRT version"):
        facts.version_parts("ten")


def test_polygraphy_create_config_clears_tf32_which_tensorrt_enables_by_default():
    """Why an FP32 plan is FP32 here: TF32 is on by default in TensorRT, and the CreateConfig the
    build uses (tf32=False) clears it."""
    from polygraphy.backend.trt import CreateConfig

    assert facts.TF32_ENABLED_BY_DEFAULT
    assert CreateConfig().tf32 is False
    source = inspect.getsource(CreateConfig)
    assert "config.clear_flag(trt.BuilderFlag.TF32)" in source


def test_polygraphy_network_loader_sets_the_strongly_typed_flag():
    from polygraphy.backend.trt import loader

    source = inspect.getsource(loader.CreateNetwork)
    assert "trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED" in source
    assert loader.NetworkFromOnnxPath("model.onnx", strongly_typed=True).strongly_typed is True
