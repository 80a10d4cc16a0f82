"""T5 demo checkpoints for the three seed architectures.

* ``t5-small`` (mrm8488/t5-small-finetuned-emotion): original T5, ReLU FFN, tied lm_head.
* ``flan-t5-small`` (Web4/LS-W4-T5-SM-Emotions): T5 v1.1, gated-GELU FFN, untied lm_head, and
  ``num_heads * d_kv`` (384) different from ``d_model`` (512).
* ``t5-base`` (mrm8488/t5-base-finetuned-imdb-sentiment): original T5 at base width.

``full`` uses the seeds' exact dimensions; ``tiny`` keeps each family's traits (activation,
tying, inner width != d_model, distinct encoder/decoder depth) at a few hundred KB. A T5-like
Unigram tokenizer is trained locally; every label word is one token. The model is briefly
fine-tuned with teacher forcing to answer with the label word, so greedy generation varies
with the input like the seed models do (random T5 weights emit the same token for anything).
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
class T5Size:
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_decoder_layers: int
    num_heads: int
    feed_forward_proj: str
    tied_lm_head: bool
    vocab_size: int | None  # None: the trained tokenizer's vocabulary size
    train_steps: int
    learning_rate: float
    train_max_length: int


_T5_VOCAB = 32128
SIZES: dict[str, dict[str, T5Size]] = {
    "t5-small": {
        "full": T5Size(512, 64, 2048, 6, 6, 8, "relu", True, _T5_VOCAB, 12, 1e-3, 48),
        "tiny": T5Size(32, 8, 64, 2, 2, 4, "relu", True, None, 120, 5e-3, 64),
    },
    "flan-t5-small": {
        "full": T5Size(512, 64, 1024, 8, 8, 6, "gated-gelu", False, _T5_VOCAB, 12, 1e-3, 48),
        "tiny": T5Size(32, 8, 48, 2, 2, 3, "gated-gelu", False, None, 120, 5e-3, 64),
    },
    "t5-base": {
        "full": T5Size(768, 64, 3072, 12, 12, 12, "relu", True, _T5_VOCAB, 8, 5e-4, 48),
        "tiny": T5Size(48, 16, 96, 3, 2, 3, "relu", True, None, 80, 5e-3, 64),
    },
}
TOKENIZER_VOCAB = 2000
BATCH = 16
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # T5's; <pad> is also the decoder start token


def demo_tokenizer(labels: tuple[str, ...]):
    """The Unigram tokenizer of the T5 demos, trained on every built-in text; labels are single tokens."""
    from tritonize.corpus import EMOTION_LABELS, SENTIMENT_LABELS, builtin_emotion, builtin_reviews
    from tritonize.demo.tokenizer_training import train_unigram

    texts = [e.text for e in (*builtin_emotion(), *builtin_reviews())]
    return train_unigram(texts, TOKENIZER_VOCAB, required_words=(*EMOTION_LABELS, *SENTIMENT_LABELS, *labels))


def t5_config(demo: str, size: str, vocab_size: int):
    """``T5Config`` of a demo at a size; ``vocab_size`` is used when the size does not fix one."""
    from transformers import T5Config

    dims = SIZES[demo][size]
    return T5Config(
        vocab_size=dims.vocab_size or vocab_size,
        d_model=dims.d_model,
        d_kv=dims.d_kv,
        d_ff=dims.d_ff,
        num_layers=dims.num_layers,
        num_decoder_layers=dims.num_decoder_layers,
        num_heads=dims.num_heads,
        feed_forward_proj=dims.feed_forward_proj,
        tie_word_embeddings=dims.tied_lm_head,
        n_positions=512,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
    )


def _untie_lm_head(model: Any, seed: int) -> None:
    """Give the model its own lm_head (T5 v1.1). transformers 5 ties by default and keeps
    an untied head on load when the checkpoint holds both tensors with different values."""
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(model.lm_head.weight.shape, generator=generator) * model.config.d_model**-0.5
    model.lm_head.weight = torch.nn.Parameter(weight)


def _fine_tune(model: Any, tokenizer: Any, labels: tuple[str, ...], dims: T5Size, seed: int) -> float:
    """Teacher-forced AdamW steps: text -> label word + ``</s>``; returns the last loss."""
    import torch

    pairs = training_examples(labels)
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
        target = tokenizer([pairs[i][1] for i in idx], padding=True, return_tensors="pt")
        label_ids = target.input_ids.masked_fill(target.attention_mask == 0, -100)
        loss = model(**batch, labels=label_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def build_t5(demo: str, size: str, labels: tuple[str, ...], out_dir: Path, seed: int) -> dict[str, Any]:
    """Write a T5ForConditionalGeneration + tokenizer for ``demo`` to ``out_dir``; returns marker info."""
    import torch
    from transformers import T5ForConditionalGeneration

    started = time.perf_counter()
    dims = SIZES[demo][size]
    tokenizer = demo_tokenizer(labels)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(demo, size, len(tokenizer)))
    if not dims.tied_lm_head:
        _untie_lm_head(model, seed)
    loss = _fine_tune(model, tokenizer, labels, dims, seed)
    model.generation_config.decoder_start_token_id = PAD_ID
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    logger.info("%s %s: fine-tuned %d steps, last loss %.3f, %.1f s", demo, size, dims.train_steps, loss, seconds)
    return {"architecture": "T5ForConditionalGeneration", "dims": asdict(dims), "final_loss": round(loss, 4)}
