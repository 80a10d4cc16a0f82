"""`tritonize build --demo tiny --train-data FILE`: the demo checkpoints fine-tuned on a labelled file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest_export import demo_spec, one_thread, scratch_dir  # noqa: F401

from tritonize.corpus import EMOTION_LABELS, builtin_emotion
from tritonize.demo import MARKER, demo_checkpoint_dir, make_demo_checkpoint, train_data_info
from tritonize.demo.distilbert import SIZES, recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _slice_file(tmp_path: Path, count: int = 60) -> Path:
    path = tmp_path / "slice.txt"
    path.write_text("".join(f"{e.text};{e.label}\n" for e in builtin_emotion()[:count]), encoding="utf-8")
    return path


def test_train_data_applies_only_when_file_labels_are_the_deployments(tmp_path: Path) -> None:
    data = _slice_file(tmp_path)
    emotion = train_data_info(demo_spec("distilbert"), data)
    assert emotion is not None and emotion["examples"] == 60 and len(emotion["sha256"]) == 16
    assert train_data_info(demo_spec("distilbert", ("negative", "positive")), data) is None
    root = tmp_path / "cache"
    plain, trained = (demo_checkpoint_dir(root, demo_spec("distilbert"), "tiny", d) for d in (None, data))
    assert plain != trained and trained.name.endswith(emotion["sha256"])


def test_recipe_runs_file_epochs_when_training_on_a_file() -> None:
    tiny = SIZES["tiny"]
    assert recipe(tiny, 16000, from_file=True).steps == math.ceil(tiny.file_epochs * 16000 / 32)
    assert recipe(tiny, 16000, from_file=False).steps == tiny.train_steps


def test_make_demo_checkpoint_fine_tunes_on_file_slice_when_train_data_given(tmp_path: Path) -> None:
    from transformers import pipeline

    data = _slice_file(tmp_path)
    out = make_demo_checkpoint(demo_spec("distilbert"), "tiny", scratch_dir("trained-slice"), train_data=data)
    marker = json.loads((out / MARKER).read_text())
    assert marker["train_data"]["examples"] == 60 and marker["fine_tune"]["steps"] == math.ceil(SIZES["tiny"].file_epochs * 60 / 32)
    classify = pipeline("text-classification", model=str(out), device="cpu")
    answers = classify([e.text for e in builtin_emotion()[:60]])
    assert all(a["label"] in EMOTION_LABELS for a in answers)
    before = (out / "model.safetensors").stat().st_mtime_ns  # same file: reused, not retrained
    assert make_demo_checkpoint(demo_spec("distilbert"), "tiny", out, train_data=data) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_build_rejects_train_data_when_no_demo(tmp_path: Path) -> None:
    from tritonize.errors import RepositoryError
    from tritonize.pipeline import BuildOptions
    from tritonize.spec import load_spec

    with pytest.raises(RepositoryError, match="--demo"):
        BuildOptions(spec=load_spec(), out=tmp_path, train_data=_slice_file(tmp_path))
