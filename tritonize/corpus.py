"""Small labelled text corpora: built-in ones shipped with tritonize, and loaders for files.

Two file formats are read, the two the seed data sets use:

* ``text;label`` lines (the emotion data set); the label follows the *last* ``;``.
* a TSV with a ``text<TAB>label`` header (the IMDB sample), read without quote handling.

The built-in corpora (``tritonize/data``) were written for tritonize: short English sentences
labelled with six emotions, and movie reviews labelled positive / negative, some of them long
enough (300+ words) to be truncated at 512 T5 tokens. They train the demo tokenizers, make the
demo checkpoints input-sensitive, and feed validation and tests. The ``*_train`` files only
train the demo checkpoints.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tritonize.errors import TritonizeError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

# Package data, read through importlib.resources so an installed wheel reads it like a checkout.
DATA_DIR: Traversable = resources.files("tritonize") / "data"
EMOTION_FILE = "emotion.txt"
EMOTION_TRAIN_FILE = "emotion_train.txt"
REVIEWS_FILE = "reviews.tsv"
REVIEWS_TRAIN_FILE = "reviews_train.tsv"
EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")
SENTIMENT_LABELS = ("negative", "positive")
_TSV_HEADER = ["text", "label"]


class CorpusError(TritonizeError, ValueError):
    """A corpus file cannot be read or is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def _read_lines(path: Path | Traversable) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read corpus: {exc}") from None


def _parse_semicolon(path: Path, lines: list[str]) -> list[Example]:
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition(";")
        if not sep or not text.strip() or not label.strip():
            raise CorpusError(f"{path}:{number}: expected 'text;label', got {line[:80]!r}")
        examples.append(Example(text=text.strip(), label=label.strip()))
    return examples


def _parse_tsv(path: Path, lines: list[str]) -> list[Example]:
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    examples = []
    for number, row in enumerate(reader, start=1):
        if number == 1:
            continue  # header, checked by the caller
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise CorpusError(f"{path}:{number}: expected 2 tab-separated fields 'text<TAB>label', got {len(row)}")
        examples.append(Example(text=row[0].strip(), label=row[1].strip()))
    return examples


def load_corpus(path: str | Path | Traversable) -> list[Example]:
    """Read a ``text;label`` file or a TSV with a ``text<TAB>label`` header.

    Raises:
        CorpusError: the file cannot be read, is empty, or a line is malformed (path:line named).
    """
    path = Path(path) if isinstance(path, str) else path
    lines = _read_lines(path)
    if lines and lines[0].split("\t") == _TSV_HEADER:
        examples = _parse_tsv(path, lines)
    else:
        examples = _parse_semicolon(path, lines)
    if not examples:
        raise CorpusError(f"{path}: corpus holds no examples")
    return examples


def builtin_emotion() -> list[Example]:
    """~120 sentences (3 to ~60 words), 20 per label: sadness, joy, love, anger, fear, surprise."""
    return load_corpus(DATA_DIR / EMOTION_FILE)


def builtin_emotion_train() -> list[Example]:
    """~140 more short sentences, about 23 per emotion label, that only train the demo checkpoints
    (validation, tests and the bench keep :func:`builtin_emotion`, so they do not grow)."""
    return load_corpus(DATA_DIR / EMOTION_TRAIN_FILE)


def builtin_reviews() -> list[Example]:
    """40 movie reviews labelled positive / negative; four are 300+ words long."""
    return load_corpus(DATA_DIR / REVIEWS_FILE)


def builtin_reviews_train() -> list[Example]:
    """~220 short reviews and remarks (films, books, food, trips, products, days), half positive,
    half negative, that only train the demo checkpoints. Forty reviews teach a tiny model too
    little to call a plain sentence such as "i am so happy today" positive; validation, tests and
    the bench keep :func:`builtin_reviews`, so they do not grow."""
    return load_corpus(DATA_DIR / REVIEWS_TRAIN_FILE)


def builtin_texts() -> list[str]:
    """Every text of the built-in corpora, training-only ones included: what demo tokenizers learn from."""
    corpora = (builtin_emotion(), builtin_emotion_train(), builtin_reviews(), builtin_reviews_train())
    return [e.text for corpus in corpora for e in corpus]


def builtin_for_labels(labels: tuple[str, ...], training: bool = False) -> list[Example]:
    """The built-in corpus whose labels overlap ``labels`` most (emotion on a tie); with
    ``training``, each corpus includes the texts kept for training the demos only."""
    emotion = builtin_emotion() + builtin_emotion_train() if training else builtin_emotion()
    reviews = builtin_reviews() + builtin_reviews_train() if training else builtin_reviews()
    return max([emotion, reviews], key=lambda examples: len({e.label for e in examples} & set(labels)))

