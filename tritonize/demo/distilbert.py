"""DistilBERT demo checkpoint (seed: bhadresh-savani/distilbert-base-uncased-emotion).

``full`` has distilbert-base-uncased's dimensions; ``tiny`` keeps the architecture at a few MB.
Both get a WordPiece tokenizer trained on the built-in corpora and a short, deterministic
fine-tune on the built-in emotion corpus so predictions depend on the input.
"""

from __future__ import annotations

import logging
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


SIZES = {
    # distilbert-base-uncased: 6 layers, dim 768, 12 heads, FFN 3072, vocab 30522, 512 positions.
    # Full-size: 32 steps of ~1.8 s on one thread (~60 s in all); 4 of 6 labels predicted on the corpus.
    "full": DistilBertSize(6, 768, 12, 3072, 30522, 512, 32, 1e-4, 32),
    "tiny": DistilBertSize(2, 64, 2, 128, None, 512, 80, 3e-3, 64),
}
TOKENIZER_VOCAB = 4000
BATCH = 16


def demo_tokenizer():
    """The WordPiece tokenizer of the DistilBERT demo, trained on every built-in text."""
    from tritonize.corpus import builtin_emotion, builtin_reviews
    from tritonize.demo.tokenizer_training import train_wordpiece

    return train_wordpiece([e.text for e in (*builtin_emotion(), *builtin_reviews())], TOKENIZER_VOCAB)


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


def _fine_tune(model, tokenizer, labels: tuple[str, ...], dims: DistilBertSize, seed: int) -> float:
    """A few deterministic AdamW steps on the built-in corpus; returns the last loss."""
    import torch

    pairs = training_examples(labels)
    label_ids = {lab: i for i, lab in enumerate(labels)}
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=dims.learning_rate)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(dims.train_steps):
        idx = torch.randperm(len(pairs), generator=generator)[:BATCH].tolist()
        batch = tokenizer(
            [pairs[i][0] for i in idx],
            padding=True,
            truncation=True,
            max_length=dims.train_max_length,
            return_tensors="pt",
        )
        target = torch.tensor([label_ids[pairs[i][1]] for i in idx])
        loss = model(**batch, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def build_distilbert(size: str, labels: tuple[str, ...], out_dir: Path, seed: int) -> dict[str, Any]:
    """Write a DistilBERT sequence classifier + tokenizer to ``out_dir``; returns marker info."""
    import torch
    from transformers import DistilBertForSequenceClassification

    started = time.perf_counter()
    dims = SIZES[size]
    tokenizer = demo_tokenizer()
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(distilbert_config(size, labels, len(tokenizer)))
    loss = _fine_tune(model, tokenizer, labels, dims, seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    logger.info("distilbert %s: fine-tuned %d steps, last loss %.3f, %.1f s", size, dims.train_steps, loss, seconds)
    return {"architecture": "DistilBertForSequenceClassification", "dims": asdict(dims), "final_loss": round(loss, 4)}
