"""T5 demo checkpoints: three architecture families, loadable like hub checkpoints, input-sensitive."""

from __future__ import annotations

import pytest
import torch
from conftest_export import one_thread, shipped_spec, tiny_t5  # noqa: F401
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from tritonize.corpus import builtin_emotion, builtin_reviews
from tritonize.demo.t5 import t5_config
from tritonize.export.tensors import normalized

pytestmark = pytest.mark.usefixtures("one_thread")
DEMOS = ("t5-small", "flan-t5-small", "t5-base")


def _corpus(demo: str) -> list[str]:
    return [e.text for e in (builtin_reviews() if demo == "t5-base" else builtin_emotion())]


@pytest.mark.parametrize("demo", DEMOS)
def test_t5_demo_generates_varied_label_words_across_corpus(demo: str):
    path = tiny_t5(demo)
    spec = shipped_spec(demo)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    texts = _corpus(demo)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=spec.generation.max_new_tokens, do_sample=False, num_beams=1)
    answers = tokenizer.batch_decode(out, skip_special_tokens=True)
    assert len(set(answers)) >= min(3, len(spec.labels))
    assert sum(a in spec.labels for a in answers) >= 0.9 * len(answers)


@pytest.mark.parametrize("demo", DEMOS)
def test_t5_demo_label_words_are_single_tokens_and_special_ids_match_t5(demo: str):
    path = tiny_t5(demo)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoModelForSeq2SeqLM.from_pretrained(path).config
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (config.decoder_start_token_id, config.pad_token_id, config.eos_token_id) == (0, 0, 1)
    for label in shipped_spec(demo).labels:
        assert len(tokenizer(label, add_special_tokens=False).input_ids) == 1, label


def test_t5_demo_tiny_keeps_each_family_trait():
    small = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5("t5-small"))
    flan = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5("flan-t5-small"))
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5("t5-base"))
    assert small.config.feed_forward_proj == "relu" and small.lm_head.weight is small.shared.weight
    assert flan.config.feed_forward_proj == "gated-gelu"
    assert flan.lm_head.weight is not flan.shared.weight
    assert not torch.equal(flan.lm_head.weight, flan.shared.weight)
    assert flan.config.num_heads * flan.config.d_kv != flan.config.d_model  # like flan-t5-small's 6 * 64 != 512
    assert base.config.num_layers != base.config.num_decoder_layers  # layer counts read from the config


@pytest.mark.parametrize(
    ("demo", "dims"),
    [
        ("t5-small", (512, 6, 6, 8, 64, 2048, "relu", True)),
        ("flan-t5-small", (512, 8, 8, 6, 64, 1024, "gated-gelu", False)),
        ("t5-base", (768, 12, 12, 12, 64, 3072, "relu", True)),
    ],
)
def test_t5_full_config_has_seed_dims(demo: str, dims: tuple):
    config = t5_config(demo, "full", vocab_size=1000)
    got = (
        normalized(config, "hidden_size"),
        normalized(config, "num_layers"),
        normalized(config, "num_decoder_layers"),
        normalized(config, "num_heads"),
        normalized(config, "head_dim"),
        config.d_ff,
        config.feed_forward_proj,
        config.scale_decoder_outputs,  # transformers 5 spelling of "lm_head tied to the embedding"
    )
    assert got == dims
    assert config.vocab_size == 32128
