"""The DistilBERT demo checkpoint: builds, loads like a hub checkpoint, depends on its input."""

from __future__ import annotations

import json

import pytest
import torch
from conftest_export import demo_spec, one_thread, scratch_dir, tiny_checkpoint  # noqa: F401
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from tritonize.corpus import EMOTION_LABELS, builtin_emotion
from tritonize.demo import MARKER, DemoError, make_demo_checkpoint
from tritonize.demo.distilbert import distilbert_config
from tritonize.errors import SpecError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_make_demo_checkpoint_writes_hub_layout_and_marker():
    path = tiny_checkpoint("distilbert")
    for name in ("config.json", "tokenizer.json", "model.safetensors", MARKER):
        assert (path / name).exists(), name
    marker = json.loads((path / MARKER).read_text())
    assert (marker["demo"], marker["size"], marker["labels"]) == ("distilbert", "tiny", list(EMOTION_LABELS))


def test_make_demo_checkpoint_reuses_directory_when_marker_matches():
    path = tiny_checkpoint("distilbert")
    before = (path / "model.safetensors").stat().st_mtime_ns
    assert make_demo_checkpoint(demo_spec("distilbert"), "tiny", path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == before


def test_demo_classifier_predictions_vary_across_corpus():
    path = tiny_checkpoint("distilbert")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    assert [model.config.id2label[i] for i in range(6)] == list(EMOTION_LABELS)
    examples = builtin_emotion()
    with torch.no_grad():
        batch = tokenizer([e.text for e in examples], padding=True, return_tensors="pt")
        assert "token_type_ids" not in batch
        probs = model(**batch).logits.softmax(-1)
    predicted = {model.config.id2label[i] for i in probs.argmax(-1).tolist()}
    assert len(predicted) >= 3
    assert float(probs.std(dim=0).min()) > 0.01


def test_demo_classifier_runs_in_hf_pipeline():
    path = str(tiny_checkpoint("distilbert"))
    classify = pipeline("text-classification", model=path, tokenizer=path, device="cpu")
    results = classify(["i am so happy today", "i am furious with you"])
    assert all(r["label"] in EMOTION_LABELS and 0 < r["score"] <= 1 for r in results)


def test_demo_classifier_uses_spec_labels_when_given():
    labels = ("negative", "positive")
    path = tiny_checkpoint("distilbert", labels)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_distilbert_full_config_has_base_uncased_dims():
    config = distilbert_config("full", EMOTION_LABELS, vocab_size=1000)
    dims = (
        config.n_layers,
        config.dim,
        config.n_heads,
        config.hidden_dim,
        config.vocab_size,
        config.max_position_embeddings,
    )
    assert dims == (6, 768, 12, 3072, 30522, 512)
    assert config.num_labels == 6


def test_make_demo_checkpoint_raises_when_demo_or_size_unknown():
    with pytest.raises(SpecError, match="demo"):
        make_demo_checkpoint(demo_spec("bert-large"), "tiny", scratch_dir("unknown"))
    with pytest.raises(DemoError, match="size"):
        make_demo_checkpoint(demo_spec("distilbert"), "huge", scratch_dir("unknown"))


def test_tiny_demo_answers_demo_and_readme_sentences_correctly_when_built_without_file():
    from tritonize.corpus import EMOTION_LABELS
    from tritonize.demo.sentences import SENTENCES

    expected = {s.text: s.expected(EMOTION_LABELS) for s in SENTENCES}
    expected.update({"i feel great": "joy", "i love this": "love", "i feel great today": "joy"})
    path = str(tiny_checkpoint("distilbert"))
    classify = pipeline("text-classification", model=path, tokenizer=path, device="cpu")
    answers = {text: result["label"] for text, result in zip(expected, classify(list(expected)))}
    assert answers == expected
