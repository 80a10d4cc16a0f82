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
    train_decoder_only: bool  # full sizes: encoder + embeddings frozen, encoder run once


_T5_VOCAB = 32128
# Tiny step counts: enough passes over the built-in corpora (~260 emotion sentences, ~260 reviews)
# that every demo sentence (tritonize/demo/sentences.py) gets its expected answer; the sentiment
# model learns better at a lower rate (21 of 24 held-out plain sentences right at 400 x 3e-3,
# 14 of 24 at 300 x 1e-2).
SIZES: dict[str, dict[str, T5Size]] = {
    "t5-small": {
        "full": T5Size(512, 64, 2048, 6, 6, 8, "relu", True, _T5_VOCAB, 80, 1e-3, 64, True),
        "tiny": T5Size(32, 8, 64, 2, 2, 4, "relu", True, None, 300, 5e-3, 64, False),
    },
    "flan-t5-small": {
        "full": T5Size(512, 64, 1024, 8, 8, 6, "gated-gelu", False, _T5_VOCAB, 80, 1e-3, 64, True),
        "tiny": T5Size(32, 8, 48, 2, 2, 3, "gated-gelu", False, None, 300, 5e-3, 64, False),
    },
    "t5-base": {
        "full": T5Size(768, 64, 3072, 12, 12, 12, "relu", True, _T5_VOCAB, 80, 1e-3, 64, True),
        "tiny": T5Size(48, 16, 96, 3, 2, 3, "relu", True, None, 400, 3e-3, 64, False),
    },
}
TOKENIZER_VOCAB = 2000
BATCH = 16
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # T5's; <pad> is also the decoder start token


def demo_tokenizer(labels: tuple[str, ...]):
    """The Unigram tokenizer of the T5 demos, trained on every built-in text; labels are single tokens."""
    from tritonize.corpus import EMOTION_LABELS, SENTIMENT_LABELS, builtin_texts
    from tritonize.demo.tokenizer_training import train_unigram

    return train_unigram(builtin_texts(), TOKENIZER_VOCAB, required_words=(*EMOTION_LABELS, *SENTIMENT_LABELS, *labels))


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


def _trainable(model: Any, dims: T5Size) -> list[Any]:
    """Everything, or for decoder-only training the decoder blocks without their cross-attention
    key/value projections, the final norm and an untied head; the rest gets no gradient (the
    shared embedding stays fixed because the encoder reads it and its outputs are cached)."""
    if not dims.train_decoder_only:
        return list(model.parameters())
    keep = []
    for name, param in model.named_parameters():
        cross_kv = ".EncDecAttention.k." in name or ".EncDecAttention.v." in name
        trained = name.startswith(("decoder.block.", "decoder.final_layer_norm.")) and not cross_kv
        trained = trained or (name == "lm_head.weight" and not dims.tied_lm_head)
        param.requires_grad_(trained)
        if trained:
            keep.append(param)
    return keep


MAX_FILE_PAIRS = 1024  # a training file is sampled: the steps are fixed, and full sizes encode every pair once


def _pairs(labels: tuple[str, ...], train_data: Path | None, seed: int) -> list[tuple[str, str]]:
    import random

    pairs = training_examples(labels, train_data)
    if len(pairs) > MAX_FILE_PAIRS:
        pairs = random.Random(seed).sample(pairs, MAX_FILE_PAIRS)
    return pairs


def _fine_tune(
    model: Any, tokenizer: Any, labels: tuple[str, ...], dims: T5Size, seed: int, train_data: Path | None = None
) -> float:
    """Teacher-forced AdamW steps: text -> label word + ``</s>``; returns the last loss.

    Full sizes train the decoder only over encoder outputs computed once: a full-size step
    costs a small fraction of a whole-model step, and a random encoder's outputs already
    differ per input, which is all the decoder needs to answer per input.
    """
    import torch

    pairs = _pairs(labels, train_data, seed)
    generator = torch.Generator().manual_seed(seed)
    inputs = tokenizer(
        [t for t, _ in pairs], padding=True, truncation=True, max_length=dims.train_max_length, return_tensors="pt"
    )
    target = tokenizer([lab for _, lab in pairs], padding=True, return_tensors="pt")
    label_ids = target.input_ids.masked_fill(target.attention_mask == 0, -100)
    hidden = None
    if dims.train_decoder_only:
        model.eval()
        with torch.no_grad():
            hidden = model.encoder(**inputs).last_hidden_state
    optimizer = torch.optim.AdamW(_trainable(model, dims), lr=dims.learning_rate)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(dims.train_steps):
        idx = torch.randperm(len(pairs), generator=generator)[:BATCH]
        mask = inputs.attention_mask[idx]
        width = int(mask.sum(dim=1).max())  # drop columns that are padding in the whole batch
        if hidden is None:
            batch = {"input_ids": inputs.input_ids[idx, :width], "attention_mask": mask[:, :width]}
        else:
            batch = {"encoder_outputs": (hidden[idx, :width],), "attention_mask": mask[:, :width]}
        loss = model(**batch, labels=label_ids[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.requires_grad_(True)
    return float(loss.detach())


def build_t5(
    demo: str, size: str, labels: tuple[str, ...], out_dir: Path, seed: int, train_data: Path | None = None
) -> dict[str, Any]:
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
    loss = _fine_tune(model, tokenizer, labels, dims, seed, train_data)
    model.generation_config.decoder_start_token_id = PAD_ID
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    logger.info("%s %s: fine-tuned %d steps, last loss %.3f, %.1f s", demo, size, dims.train_steps, loss, seconds)
    return {"architecture": "T5ForConditionalGeneration", "dims": asdict(dims), "final_loss": round(loss, 4)}
