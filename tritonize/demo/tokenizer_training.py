"""Train small tokenizers locally, shaped like the ones the seed checkpoints ship.

The hub is not reachable from the build machines, so demo checkpoints carry tokenizers trained
here on the built-in corpora. They follow the real ones closely enough that every later step
(tokenizer step in Triton, padding, truncation, special ids) is exercised the same way:

* :func:`train_wordpiece`: BERT-uncased-like (lowercase + accent stripping, WordPiece with
  ``##`` continuations, ``[CLS] $A [SEP]``), no ``token_type_ids`` like DistilBERT's. Its
  vocabulary is chosen by frequency here (the library trainer is not reproducible).
* :func:`train_unigram`: T5-like (Metaspace, Unigram, ``<pad>``=0, ``</s>``=1, ``<unk>``=2,
  ``</s>`` appended).

Training is deterministic for a given input. In transformers 5 a trained ``tokenizers`` object
is wrapped with ``PreTrainedTokenizerFast(tokenizer_object=...)``.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

MODEL_MAX_LENGTH = 512
# Every printable ASCII character is in the vocabulary (word-initial and, for WordPiece, as a
# ``##`` continuation), so words never seen in training split into pieces instead of [UNK].
ALPHABET = sorted(set(string.printable) - set(string.whitespace))

WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] = 0, like BERT
UNIGRAM_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 like T5; <pad> starts decoding
METASPACE = "\u2581"
_MAX_AFFIX = 6  # longest word prefix / suffix considered as a WordPiece piece
_SCORE_DECIMALS = 6
_TRAINER_CHAR_PENALTY = 1e-4  # tokenizers' UnigramTrainer: score step of characters it appends


def _word_counts(tokenizer, texts: Iterable[str]) -> Counter[str]:
    """Words as the tokenizer's own normalizer and pre-tokenizer cut them, with their counts."""
    counts: Counter[str] = Counter()
    for text in texts:
        normalized = tokenizer.normalizer.normalize_str(text)
        counts.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def _wordpiece_vocab(words: Counter[str], vocab_size: int) -> dict[str, int]:
    """A deterministic WordPiece vocabulary: specials, the alphabet (plain and ``##``), then the
    most frequent whole words, word prefixes and ``##`` suffixes (ties broken by spelling).

    ``tokenizers``' WordPieceTrainer breaks merge ties in hash-map order, so two runs on the same
    texts give different vocabularies; this frequency-based one is reproducible, and WordPiece's
    greedy longest-match still splits any unseen word into known pieces.
    """
    candidates: Counter[str] = Counter()
    for word, count in words.items():
        candidates[word] += count
        for n in range(2, min(len(word), _MAX_AFFIX + 1)):
            candidates[word[:n]] += count
            candidates["##" + word[-n:]] += count
    base = [*WORDPIECE_SPECIALS, *ALPHABET, *(f"##{c}" for c in ALPHABET)]
    ranked = sorted((p for p in candidates if p not in set(base)), key=lambda p: (-candidates[p], p))
    pieces = base + ranked[: max(0, vocab_size - len(base))]
    return {piece: i for i, piece in enumerate(pieces)}


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a BERT-uncased-like WordPiece tokenizer producing ``input_ids`` and ``attention_mask``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = _wordpiece_vocab(_word_counts(tokenizer, texts), vocab_size)
    tokenizer.model = models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
        do_lower_case=True,
    )


def _canonical_unigram(tokenizer_json: str, required: list[str]) -> str:
    """Make a trained Unigram vocab reproducible and hold every ``required`` word as one piece.

    The trainer's EM sums in hash-map order, so scores differ in the last bits between runs,
    and the characters it must keep but did not select get made-up scores just above its
    lowest one (``min + k * 1e-4``, ``k`` in hash-map order). So: scores are rounded, those
    characters share the lowest score, and pieces are re-ordered (specials first, then by
    score and spelling). Required words are added as ``▁word`` with the best score.
    """
    data = json.loads(tokenizer_json)
    scores = {piece: round(score, _SCORE_DECIMALS) for piece, score in data["model"]["vocab"]}
    floor = min(score for piece, score in scores.items() if piece not in UNIGRAM_SPECIALS)
    band = floor + _TRAINER_CHAR_PENALTY * (len(ALPHABET) + 1)
    for piece, score in scores.items():
        if len(piece) == 1 and piece not in UNIGRAM_SPECIALS and score <= band:
            scores[piece] = floor
    best = max(score for piece, score in scores.items() if piece not in UNIGRAM_SPECIALS)
    for word in required:
        scores.setdefault(METASPACE + word, best)
    rest = sorted((p for p in scores if p not in UNIGRAM_SPECIALS), key=lambda p: (-scores[p], p))
    data["model"]["vocab"] = [[p, scores[p]] for p in (*UNIGRAM_SPECIALS, *rest)]
    data["model"]["unk_id"] = UNIGRAM_SPECIALS.index("<unk>")
    data["added_tokens"] = [
        {**tok, "id": UNIGRAM_SPECIALS.index(tok["content"])}
        for tok in data["added_tokens"]
        if tok["content"] in UNIGRAM_SPECIALS
    ]
    return json.dumps(data)


def train_unigram(texts: Iterable[str], vocab_size: int, required_words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train a T5-like Unigram tokenizer (``<pad>``=0, ``</s>``=1, ``<unk>``=2, ``</s>`` appended).

    ``required_words`` (e.g. the label words a model answers with) are guaranteed to be single
    tokens, like ``sadness`` or ``positive`` are in T5's own vocabulary.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    required = list(dict.fromkeys(required_words))
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(UNIGRAM_SPECIALS),
        unk_token="<unk>",
        initial_alphabet=ALPHABET,
        shrinking_factor=0.75,
        show_progress=False,
    )
    tokenizer.train_from_iterator([*texts, *required], trainer=trainer)
    tokenizer = Tokenizer.from_str(_canonical_unigram(tokenizer.to_str(), required))
    eos_id = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )
