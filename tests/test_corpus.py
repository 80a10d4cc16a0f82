"""Built-in corpora, the two corpus file formats, and real data files when TRITONIZE_TEST_DATA names them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import data_file

from tritonize.corpus import (
    EMOTION_LABELS,
    CorpusError,
    Example,
    builtin_emotion,
    builtin_reviews,
    load_corpus,
)


def test_builtin_emotion_has_six_balanced_labels_and_varied_lengths():
    examples = builtin_emotion()
    assert 100 <= len(examples) <= 150
    counts = {lab: sum(e.label == lab for e in examples) for lab in EMOTION_LABELS}
    assert set(e.label for e in examples) == set(EMOTION_LABELS)
    assert min(counts.values()) >= 15
    words = [len(e.text.split()) for e in examples]
    assert min(words) <= 3
    assert sum(w >= 40 for w in words) >= 4  # several length buckets are hit
    assert len({e.text for e in examples}) == len(examples)


def test_builtin_reviews_are_labelled_sentiment_with_long_reviews():
    examples = builtin_reviews()
    assert 35 <= len(examples) <= 50
    assert {e.label for e in examples} == {"positive", "negative"}
    assert sum(len(e.text.split()) >= 300 for e in examples) >= 3


def test_load_corpus_semicolon_splits_on_last_semicolon_when_text_has_one(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("a; b c;joy\n\nplain;sadness\n", encoding="utf-8")
    assert load_corpus(path) == [Example("a; b c", "joy"), Example("plain", "sadness")]


def test_load_corpus_tsv_reads_header_and_quotes_literally(tmp_path: Path):
    path = tmp_path / "c.tsv"
    path.write_text('text\tlabel\n"quoted" review\tpositive\nbad\tnegative\n', encoding="utf-8")
    assert load_corpus(path) == [Example('"quoted" review', "positive"), Example("bad", "negative")]


@pytest.mark.parametrize(
    ("content", "line"),
    [("ok;joy\nno label here\n", 2), ("ok;joy\n;joy\n", 2), ("text\tlabel\nok\tpositive\na\tb\tc\n", 3)],
)
def test_load_corpus_raises_naming_line_when_malformed(tmp_path: Path, content: str, line: int):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"bad\.txt:{line}:") as info:
        load_corpus(path)
    assert isinstance(info.value, ValueError)


def test_load_corpus_raises_when_file_missing_or_empty(tmp_path: Path):
    with pytest.raises(CorpusError, match="cannot read"):
        load_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no examples"):
        load_corpus(tmp_path / "empty.txt")


def test_load_corpus_reads_emotion_val_when_test_data_given():
    examples = load_corpus(data_file("emotion", "val.txt"))
    assert len(examples) > 1000
    assert {e.label for e in examples} == set(EMOTION_LABELS)


def test_load_corpus_reads_imdb_sample_when_test_data_given():
    examples = load_corpus(data_file("imdb", "sample.tsv"))
    assert {e.label for e in examples} == {"positive", "negative"}
