"""DistilBERT demo checkpoint (seed: bhadresh-savani/distilbert-base-uncased-emotion).

``full`` has distilbert-base-uncased's dimensions; ``tiny`` keeps the architecture at a few MB.
Both get a WordPiece tokenizer trained on the built-in corpora and a short, deterministic
fine-tune on the built-in emotion corpora, so predictions depend on the input and the tiny one
answers plain sentences like the README's correctly. With a labelled file (``train_data``) the
tokenizer also learns the file's words and the fine-tune runs over the file in epochs with a
one-cycle schedule (measured on the 16k-sentence emotion train file: two epochs, 1000 steps,
~55 s of CPU on one thread; 86.3% on its 2000-sentence validation file, through the server).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tritonize.demo import training_examples

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistilBertSize:
    n_layers: int
    dim: int
    n_heads: int
    hidden_dim: int
    vocab_size: int | None  # None: the trained tokenizer's vocabulary size
    max_position_embeddings: int
    train_steps: int
    learning_rate: float
    train_max_length: int
    file_epochs: float  # passes over a train_data file (full size: a fraction, one thread is slow)
    file_learning_rate: float


SIZES = {
    # distilbert-base-uncased: 6 layers, dim 768, 12 heads, FFN 3072, vocab 30522, 512 positions.
    # Full-size: 32 steps of ~1.8 s on one thread (~60 s in all); 4 of 6 labels predicted on the corpus.
    "full": DistilBertSize(6, 768, 12, 3072, 30522, 512, 32, 1e-4, 32, 0.25, 5e-5),
    # Tiny: 3e-3 left the model at the majority class on the 16k-sentence file; 1e-3 learns.
    "tiny": DistilBertSize(2, 64, 2, 128, None, 512, 300, 1e-3, 64, 2.0, 1e-3),
}
TOKENIZER_VOCAB = 4000
FILE_TOKENIZER_VOCAB = 8000  # a training file brings many more words than the built-in corpora
BATCH = 16
FILE_BATCH = 32


def demo_tokenizer(extra_texts: tuple[str, ...] | list[str] = ()):
    """The WordPiece tokenizer of the DistilBERT demo, trained on every built-in text (and ``extra_texts``)."""
    from tritonize.corpus import builtin_texts
    from tritonize.demo.tokenizer_training import train_wordpiece

    texts = builtin_texts() + list(extra_texts)
    return train_wordpiece(texts, FILE_TOKENIZER_VOCAB if extra_texts else TOKENIZER_VOCAB)


def distilbert_config(size: str, labels: tuple[str, ...], vocab_size: int):
    """``DistilBertConfig`` of a demo size; ``vocab_size`` is used when the size does not fix one."""
    from transformers import DistilBertConfig

    dims = SIZES[size]
    return DistilBertConfig(
        vocab_size=dims.vocab_size or vocab_size,
        dim=dims.dim,
        n_layers=dims.n_layers,
        n_heads=dims.n_heads,
        hidden_dim=dims.hidden_dim,
        max_position_embeddings=dims.max_position_embeddings,
        pad_token_id=0,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )


@dataclass(frozen=True)
class Recipe:
    """How the demo is fine-tuned: ``steps`` AdamW steps of ``batch`` examples, one-cycle schedule."""

    steps: int
    learning_rate: float
    batch: int


def recipe(dims: DistilBertSize, examples: int, from_file: bool) -> Recipe:
    if not from_file:
        return Recipe(dims.train_steps, dims.learning_rate, BATCH)
    return Recipe(max(1, math.ceil(dims.file_epochs * examples / FILE_BATCH)), dims.file_learning_rate, FILE_BATCH)


def _fine_tune(model, tokenizer, pairs: list[tuple[str, str]], labels, dims: DistilBertSize, plan: Recipe, seed: int) -> float:
    """Deterministic AdamW steps over shuffled passes of ``pairs``; returns the last loss.

    Warm-up then decay (one-cycle): post-LN transformers trained from scratch stall at the
    majority class without it.
    """
    import torch

    label_ids = {lab: i for i, lab in enumerate(labels)}
    targets = torch.tensor([label_ids[lab] for _, lab in pairs])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=plan.learning_rate, total_steps=plan.steps, pct_start=0.1)
    model.train()
    loss = torch.tensor(0.0)
    order: list[int] = []
    for _ in range(plan.steps):
        if len(order) < plan.batch:
            order += torch.randperm(len(pairs), generator=generator).tolist()
        idx, order = order[: plan.batch], order[plan.batch :]
        batch = tokenizer(
            [pairs[i][0] for i in idx], padding=True, truncation=True, max_length=dims.train_max_length, return_tensors="pt"
        )
        loss = model(**batch, labels=targets[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return float(loss.detach())


def build_distilbert(
    size: str, labels: tuple[str, ...], out_dir: Path, seed: int, train_data: Path | None = None
) -> dict[str, Any]:
    """Write a DistilBERT sequence classifier + tokenizer to ``out_dir``; returns marker info.

    ``train_data``: fine-tune on this labelled file (its labels must be among ``labels``).
    """
    import torch
    from transformers import DistilBertForSequenceClassification

    started = time.perf_counter()
    dims = SIZES[size]
    pairs = training_examples(labels, train_data)
    tokenizer = demo_tokenizer([text for text, _ in pairs] if train_data else ())
    plan = recipe(dims, len(pairs), train_data is not None)
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(distilbert_config(size, labels, len(tokenizer)))
    loss = _fine_tune(model, tokenizer, pairs, labels, dims, plan, seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    logger.info("distilbert %s: fine-tuned %d steps, last loss %.3f, %.1f s", size, plan.steps, loss, seconds)
    return {
        "architecture": "DistilBertForSequenceClassification",
        "dims": asdict(dims),
        "fine_tune": asdict(plan),
        "train_seconds": round(seconds, 1),
        "final_loss": round(loss, 4),
    }
