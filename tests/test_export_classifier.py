"""Classifier export to ONNX and its validation against PyTorch."""

from __future__ import annotations

import onnx
import pytest
from conftest_export import one_thread, scratch_dir, tiny_checkpoint  # noqa: F401

from tritonize.corpus import builtin_emotion
from tritonize.demo.distilbert import build_distilbert
from tritonize.errors import ExportError, ValidationError
from tritonize.export.onnx_export import export_classifier
from tritonize.export.validate import validate_classifier

TEXTS = [e.text for e in builtin_emotion()]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported():
    checkpoint = tiny_checkpoint("distilbert")
    out = scratch_dir("classifier") / "model.onnx"
    graph = export_classifier(checkpoint, out)
    return checkpoint, out, graph


def test_export_classifier_declares_ids_mask_to_logits(exported):
    _, out, graph = exported
    assert [t.name for t in graph.inputs] == ["input_ids", "attention_mask"]
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "sequence"]


def test_validate_classifier_passes_within_1e4_when_graph_matches(exported):
    checkpoint, out, _ = exported
    report = validate_classifier(checkpoint, out, TEXTS, tolerance=1e-4)
    assert report["max_abs_diff"] < 1e-4
    assert report["num_texts"] == len(TEXTS)
    assert report["graph"] == "model.onnx"


def test_validate_classifier_raises_when_checkpoint_differs(exported):
    _, out, _ = exported
    other = scratch_dir("other-distilbert")
    build_distilbert("tiny", ("sadness", "joy", "love", "anger", "fear", "surprise"), other, seed=7)
    with pytest.raises(ValidationError) as info:
        validate_classifier(other, out, TEXTS[:12], tolerance=1e-4)
    assert len(info.value.failures) >= 3  # every batch is reported, not only the first
    assert all("logits" in f and "tolerance" in f for f in info.value.failures)


def test_validate_classifier_reports_every_signature_failure_when_names_wrong(exported):
    checkpoint, out, _ = exported
    model = onnx.load(str(out))
    renamed = "ids"
    for node in model.graph.node:
        node.input[:] = [renamed if n == "input_ids" else n for n in node.input]
    model.graph.input[0].name = renamed
    bad = scratch_dir("renamed") / "model.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ValidationError) as info:
        validate_classifier(checkpoint, bad, TEXTS[:4], tolerance=1e-4)
    assert any("names" in f and "ids" in f for f in info.value.failures)


def test_export_classifier_raises_export_error_when_checkpoint_missing(tmp_path):
    with pytest.raises(ExportError, match="cannot load"):
        export_classifier(tmp_path / "nope", tmp_path / "model.onnx")
