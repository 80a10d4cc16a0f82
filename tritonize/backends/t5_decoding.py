"""Greedy decoding with a KV cache and label scoring for T5, over step callables.

Pure numpy: the steps are callables ``step(inputs: dict, outputs: list) -> dict`` so the same
code runs inside Triton (BLS calls, :mod:`tritonize.backends.t5_generate`) and in tests or
benchmarks (ONNX Runtime sessions). Tensor names follow
:func:`tritonize.export.tensors.t5_graphs` (Optimum's names).

Greedy matches ``model.generate(do_sample=False, num_beams=1)``: argmax at every step, a row
stops at eos or at ``max_new_tokens``; rows that finished leave the batch, so the remaining
steps compute only what is still running (HF keeps feeding them pad; the live rows' results
do not depend on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Step = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


def kv_names(prefix: str, num_layers: int, attentions: Sequence[str] = ("decoder", "encoder")) -> list[str]:
    return [f"{prefix}.{i}.{a}.{p}" for i in range(num_layers) for a in attentions for p in ("key", "value")]


def greedy_decode(
    decoder: Step,
    decoder_with_past: Step,
    encoder_hidden_states: np.ndarray,
    attention_mask: np.ndarray,
    max_new_tokens: int,
    eos_id: int,
    start_id: int,
    num_layers: int,
) -> list[list[int]]:
    """Generated token ids per row (eos included when reached, decoder start excluded).

    Raises ValueError for ``max_new_tokens`` < 1.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    rows = encoder_hidden_states.shape[0]
    generated: list[list[int]] = [[] for _ in range(rows)]
    first = decoder(
        {
            "input_ids": np.full((rows, 1), start_id, dtype=np.int64),
            "encoder_attention_mask": attention_mask,
            "encoder_hidden_states": encoder_hidden_states,
        },
        ["logits", *kv_names("present", num_layers)],
    )
    cache = {name.replace("present", "past_key_values", 1): first[name] for name in kv_names("present", num_layers)}
    active = np.arange(rows)
    mask = attention_mask
    next_tokens = first["logits"][:, -1, :].argmax(axis=-1)
    self_names = kv_names("present", num_layers, ("decoder",))
    for step in range(max_new_tokens):
        for row, token in zip(active, next_tokens):
            generated[row].append(int(token))
        keep = next_tokens != eos_id
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            active, next_tokens, mask = active[keep], next_tokens[keep], mask[keep]
            cache = {k: v[keep] for k, v in cache.items()}
        out = decoder_with_past(
            {"input_ids": next_tokens.reshape(-1, 1).astype(np.int64), "encoder_attention_mask": mask, **cache},
            ["logits", *self_names],
        )
        for name in self_names:
            cache[name.replace("present", "past_key_values", 1)] = out[name]
        next_tokens = out["logits"][:, -1, :].argmax(axis=-1)
    return generated


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    """Each label's target ids as the model would emit them (``</s>`` appended by the tokenizer)."""
    return [list(tokenizer.encode(label, add_special_tokens=True).ids) for label in labels]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def score_labels(
    decoder: Step,
    encoder_hidden_states: np.ndarray,
    attention_mask: np.ndarray,
    label_ids: Sequence[Sequence[int]],
    start_id: int,
    pad_id: int,
) -> np.ndarray:
    """Softmax over the labels' sequence log-likelihoods, one teacher-forced decoder pass.

    Every (row, label) pair is one decoder row: input ``[start] + label[:-1]`` padded with
    ``pad_id`` to the longest label (causal attention keeps padding from touching earlier
    positions), and the log-probabilities of the label's tokens are summed.
    """
    rows, num_labels = encoder_hidden_states.shape[0], len(label_ids)
    width = max(len(ids) for ids in label_ids)
    targets = np.full((num_labels, width), pad_id, dtype=np.int64)
    valid = np.zeros((num_labels, width), dtype=bool)
    for i, ids in enumerate(label_ids):
        targets[i, : len(ids)] = ids
        valid[i, : len(ids)] = True
    inputs = np.concatenate([np.full((num_labels, 1), start_id, dtype=np.int64), targets[:, :-1]], axis=1)
    logits = decoder(
        {
            "input_ids": np.tile(inputs, (rows, 1)),
            "encoder_attention_mask": np.repeat(attention_mask, num_labels, axis=0),
            "encoder_hidden_states": np.repeat(encoder_hidden_states, num_labels, axis=0),
        },
        ["logits"],
    )["logits"]
    logp = log_softmax(logits)  # [rows * labels, width, vocab]
    picked = np.take_along_axis(logp, np.tile(targets, (rows, 1))[..., None], axis=-1)[..., 0]
    sums = (picked * np.tile(valid, (rows, 1))).sum(axis=-1).reshape(rows, num_labels)
    sums = sums - sums.max(axis=1, keepdims=True)
    probs = np.exp(sums)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
