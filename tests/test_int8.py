"""INT8 for the CPU targets: dynamic quantization of the plain export, gated against FP32 at build time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import loopback_config

from tritonize.engines.validate import top1_changes
from tritonize.errors import SpecError, ValidationError
from tritonize.pipeline import BuildOptions, build
from tritonize.spec import parse_spec

INT8_SPEC = """
[[model]]
name = "distilbert_emotion"
checkpoint = "bhadresh-savani/distilbert-base-uncased-emotion"
task = "text-classification"
demo = "distilbert"
precision = {{ embedded = "int8", cpu = "int8" }}
{extra}
"""


@pytest.fixture(scope="module")
def int8_repository(tmp_path_factory: pytest.TempPathFactory, tritonize_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("int8") / "model_repository"
    build(BuildOptions(spec=parse_spec(INT8_SPEC.format(extra="")), out=out, demo="tiny", cache_dir=tritonize_cache))
    return out


@pytest.mark.slow
def test_int8_build_quantizes_the_model_step_and_reports_its_gate(int8_repository: Path):
    import onnx

    gate = json.loads((int8_repository / "build_report.json").read_text())["models"]["distilbert_emotion"]
    gate = gate["accuracy_gate"]
    assert gate["top1_agreement"] >= 0.99 and gate["num_texts"] == 120
    assert gate["top1_strict_agreement"] <= gate["top1_agreement"] and gate["gate"]["tie_margin"] == 0.01
    assert 0 < gate["max_prob_diff"] < 0.5  # quantized: close to FP32, but not identical
    ops = {n.op_type for n in onnx.load(str(int8_repository / "distilbert_emotion_model" / "1" / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops


@pytest.mark.slow
def test_int8_build_fails_and_keeps_previous_repository_when_gate_threshold_is_not_met(
    int8_repository: Path, tritonize_cache: Path
):
    before = sorted((p.name, p.stat().st_ino) for p in int8_repository.rglob("*") if p.is_file())
    spec = parse_spec(INT8_SPEC.format(extra="max_prob_diff = 1e-6"), source="strict-int8.toml")
    with pytest.raises(ValidationError, match=r"max \|probability - FP32\|.*> max_prob_diff 1e-06"):
        build(BuildOptions(spec=spec, out=int8_repository, demo="tiny", cache_dir=tritonize_cache))
    assert sorted((p.name, p.stat().st_ino) for p in int8_repository.rglob("*") if p.is_file()) == before


@pytest.mark.triton
@pytest.mark.slow
def test_int8_served_labels_agree_with_fp32_served_labels(int8_repository: Path, triton_server, tritonize_cache):
    from tritonize.client import classify
    from tritonize.corpus import builtin_emotion
    from tritonize.server import EmbeddedServer

    texts = [e.text for e in builtin_emotion()]
    fp32 = classify(texts, url=triton_server.grpc_url)
    config = loopback_config(int8_repository)
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        int8 = classify(texts, url=server.grpc_url)
    agree = sum(a["label"] == b["label"] for a, b in zip(fp32, int8)) / len(texts)
    # Dynamic quantization scales each batch by its own range, so served batches (other
    # padding, other neighbours) can move a borderline text: allow a little below the gate.
    assert agree >= 0.95, agree


def test_top1_changes_excuse_a_changed_class_only_when_fp32_rated_it_within_the_tie_margin():
    fp32 = np.array([[0.500, 0.496, 0.004], [0.70, 0.20, 0.10], [0.30, 0.30, 0.40], [0.45, 0.10, 0.45]])
    int8 = np.array([[0.490, 0.505, 0.005], [0.20, 0.70, 0.10], [0.30, 0.30, 0.40], [0.44, 0.10, 0.46]])
    assert top1_changes(fp32, int8, tie_margin=0.01) == (1, 2)  # row 1 is a real disagreement
    assert top1_changes(fp32, int8, tie_margin=0.0) == (2, 1)  # an exact FP32 tie stays a tie
    assert top1_changes(fp32, fp32, tie_margin=0.01) == (0, 0)


@pytest.mark.parametrize("margin", [-0.01, 0.5, 0.9])
def test_spec_rejects_tie_margin_that_would_excuse_confident_disagreements(margin: float):
    with pytest.raises(SpecError, match="tie_margin"):
        parse_spec(INT8_SPEC.format(extra=f"tie_margin = {margin}"), source="tie.toml")
