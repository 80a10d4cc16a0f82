"""`tritonize build` on checkpoints given by path, as a user with their own checkpoint would."""

from __future__ import annotations

from pathlib import Path

from tritonize.cli import main
from tritonize.repository.report import read_report
from tritonize.repository.triton_config import parse_pbtxt


def _spec(tmp_path: Path, checkpoint: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(
        f"""
[[model]]
name = "my_classifier"
checkpoint = "{checkpoint}"
task = "text-classification"
demo = "distilbert"
max_batch_size = 8
length_buckets = [32, 128, 512]
""",
        encoding="utf-8",
    )
    return path


def test_build_from_local_checkpoint_path_for_cpu_target(demo_repository: Path, tmp_path: Path, capsys):
    checkpoint = read_report(demo_repository).models["distilbert_emotion"].checkpoint  # a directory from_pretrained reads
    out = tmp_path / "repo"
    assert main(["build", "--spec", str(_spec(tmp_path, checkpoint)), "--target", "cpu", "--out", str(out)]) == 0
    entry = read_report(out).models["my_classifier"]
    assert entry.demo is None and entry.checkpoint == checkpoint
    assert entry.labels == ("sadness", "joy", "love", "anger", "fear", "surprise")  # from id2label
    assert entry.validation.max_abs_diff <= 1e-4
    model = parse_pbtxt((out / "my_classifier_model" / "config.pbtxt").read_text())
    assert model.backend == "onnxruntime" and model.max_batch_size == 8
    assert (out / "my_classifier_model" / "1" / "model.onnx").exists()
    assert not (out / "my_classifier_model" / "1" / "model.py").exists()
    assert "my_classifier" in capsys.readouterr().out


def test_build_fails_clearly_when_checkpoint_cannot_be_loaded(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = _spec(tmp_path, str(tmp_path / "no-such-checkpoint"))
    assert main(["build", "--spec", str(spec), "--out", str(tmp_path / "repo")]) == 1
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err and "no-such-checkpoint" in err and "--demo" in err
