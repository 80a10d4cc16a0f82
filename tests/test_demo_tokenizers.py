"""Locally trained tokenizers: BERT-uncased-like WordPiece and T5-like Unigram."""

from __future__ import annotations

import functools

from transformers import AutoTokenizer

from tritonize.corpus import builtin_emotion, builtin_reviews
from tritonize.demo.tokenizer_training import train_unigram, train_wordpiece

LABEL_WORDS = ("sadness", "joy", "love", "anger", "fear", "surprise", "positive", "negative")


def _texts() -> list[str]:
    return [e.text for e in (*builtin_emotion(), *builtin_reviews())]


@functools.cache
def _wordpiece():
    return train_wordpiece(_texts(), 4000)


@functools.cache
def _unigram():
    return train_unigram(_texts(), 2000, LABEL_WORDS)


def test_wordpiece_gives_no_token_type_ids_and_bert_special_ids():
    tok = _wordpiece()
    enc = tok(["I feel great", "a much longer sentence here"], padding=True)
    assert set(enc) == {"input_ids", "attention_mask"}
    assert tok.pad_token_id == 0
    assert enc["input_ids"][0][0] == tok.cls_token_id
    assert enc["input_ids"][0][enc["attention_mask"][0].index(0) - 1] == tok.sep_token_id
    assert {tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id} == {1, 2, 3, 4}


def test_wordpiece_splits_unseen_words_instead_of_unk_and_lowercases():
    tok = _wordpiece()
    ids = tok("Zyxqwvk QUIXOTIC café")["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "zyxqwvk quixotic cafe"


def test_wordpiece_training_is_deterministic():
    assert train_wordpiece(_texts(), 4000).get_vocab() == _wordpiece().get_vocab()


def test_wordpiece_round_trips_through_auto_tokenizer(tmp_path):
    _wordpiece().save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").exists()
    assert loaded("hello world") == _wordpiece()("hello world")
    assert "token_type_ids" not in loaded("hello world")


def test_unigram_has_t5_special_ids_and_appends_eos():
    tok = _unigram()
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    enc = tok(["i feel great", "a longer sentence than that one"], padding=True)
    assert set(enc) == {"input_ids", "attention_mask"}
    assert enc["input_ids"][1][-1] == tok.eos_token_id
    assert enc["input_ids"][0][-1] == tok.pad_token_id


def test_unigram_label_words_are_single_tokens_and_decode_back():
    tok = _unigram()
    for word in LABEL_WORDS:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (word, tok.convert_ids_to_tokens(ids))
        assert tok.decode(ids) == word
    text = "the movie was wonderful and quixotic"
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_unigram_training_is_deterministic():
    assert train_unigram(_texts(), 2000, LABEL_WORDS).get_vocab() == _unigram().get_vocab()
