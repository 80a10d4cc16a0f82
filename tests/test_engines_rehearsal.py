"""`tritonize build --target gpu --rehearse`, end to end through the CLI (the T5 gate under small
profiles runs in tests/test_engines_runners.py on the session's tiny exports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tritonize.cli import main
from tritonize.repository.triton_config import parse_pbtxt

FLOAT16 = 10  # onnx.TensorProto


@pytest.mark.slow
def test_rehearse_writes_the_gpu_repository_and_the_rehearsed_gate_and_says_what_it_is_not(
    tmp_path: Path, tritonize_cache: Path, capsys
):
    import onnx

    out = tmp_path / "repo"
    args = ["build", "--demo", "tiny", "--target", "gpu", "--rehearse", "--out", str(out), "--model", "distilbert_emotion"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "rehearsed accuracy gate" in printed and "No substitute for the real gate" in printed
    report = json.loads((out / "build_report.json").read_text())
    assert report["target"] == "gpu" and "No substitute" in report["rehearsal"]
    entry = report["models"]["distilbert_emotion"]
    gate = entry["accuracy_gate"]
    assert gate["rehearsed"] is True and gate["top1_agreement"] >= 0.99 and gate["num_texts"] == 120
    assert 0 < gate["max_abs_diff"] <= gate["gate"]["tolerance"]  # FP16 numerics, gated with FP16's tolerance
    step = entry["engines"]["distilbert_emotion_model"]
    assert step["engine"].startswith("rehearsed") and step["graph"]["precision"] == "fp16"
    version = out / "distilbert_emotion_model" / "1"
    assert parse_pbtxt((out / "distilbert_emotion_model" / "config.pbtxt").read_text()).platform == "tensorrt_plan"
    assert not (version / "model.plan").exists()
    assert FLOAT16 in {t.data_type for t in onnx.load(str(version / "model.onnx")).graph.initializer}


def test_rehearse_is_refused_for_the_cpu_targets(tmp_path: Path, capsys):
    assert main(["build", "--target", "cpu", "--rehearse", "--out", str(tmp_path / "repo")]) == 1
    assert "--rehearse rehearses the gpu target" in capsys.readouterr().err
