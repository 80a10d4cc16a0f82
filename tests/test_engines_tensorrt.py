"""The TensorRT build: what runs without libnvinfer here, and real builds marked tensorrt/gpu.

The marked tests run in the engines image (TensorRT 10 of the pinned NGC release, a GPU);
here they skip with the reason (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tritonize.engines.tensorrt_build import check_tensorrt_version, io_mismatches, parser_errors
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import sequence_classification_graph


def test_tensorrt_11_is_refused_with_the_reason():
    check_tensorrt_version("10.5.0.18")
    check_tensorrt_version("10.11.0.33")
    with pytest.raises(EngineBuildError, match="TensorRT 11 removed"):
        check_tensorrt_version("11.1.0.4")


class _ParserError:
    """The documented IParserError accessors (node_name, node_operator, desc) of two errors."""

    def __init__(self, node: str, op: str, desc: str) -> None:
        self._node, self._op, self._desc = node, op, desc

    def node_name(self) -> str:
        return self._node

    def node_operator(self) -> str:
        return self._op

    def desc(self) -> str:
        return self._desc


class _Parser:
    def __init__(self, errors: list[_ParserError]) -> None:
        self._errors = errors
        self.num_errors = len(errors)

    def get_error(self, i: int) -> _ParserError:
        return self._errors[i]


def test_parser_errors_list_every_error_with_node_and_operator():
    parser = _Parser([
        _ParserError("/encoder/block.0/Pow", "Pow", "unsupported datatype"),
        _ParserError("", "", "network has no inputs"),
    ])
    message = parser_errors(parser, Path("encoder_model.onnx"))
    assert "2 error(s)" in message
    assert "node '/encoder/block.0/Pow' (Pow): unsupported datatype" in message
    assert "node '?' (?): network has no inputs" in message


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
    from tritonize.cli import main
    from tritonize.pipeline import BuildOptions, build
    from tritonize.spec import Target, load_spec

    out = tmp_path / "repo"
    options = BuildOptions(spec=load_spec(), out=out, target=Target.GPU, demo="tiny", cache_dir=tritonize_cache,
                           only=("distilbert_emotion", "t5_small_emotion"))
    report = build(options)
    entry = report["models"]["distilbert_emotion"]
    assert entry["accuracy_gate"]["top1_agreement"] >= 0.99
    assert report["models"]["t5_small_emotion"]["accuracy_gate"]["token_agreement"] >= 0.99
    for step in ("distilbert_emotion_model", "t5_small_emotion_encoder", "t5_small_emotion_decoder_with_past"):
        info = json.loads((out / step / "1" / "build_info.json").read_text())
        assert info["plan"]["step"] == step and (out / step / "1" / "model.plan").stat().st_size > 0
    assert main(["engines", "check", "--repository", str(out)]) == 0
    again = build(options)
    engines = again["models"]["t5_small_emotion"]["engines"]
    assert {e["engine"] for e in engines.values()} == {"reused"}
    if os.environ.get("TRITONIZE_KEEP_GPU_REPOSITORY"):
        shutil.copytree(out, os.environ["TRITONIZE_KEEP_GPU_REPOSITORY"], dirs_exist_ok=True)
