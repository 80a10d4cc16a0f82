"""Reference T5 decoding over the three exported graphs, in plain numpy.

The graph runners are callables taking and returning dicts of numpy arrays named as in
:func:`tritonize.export.tensors.t5_graphs`, so the Triton BLS model plugs in Triton calls and
tests plug in ONNX Runtime sessions; this module imports nothing but numpy.

* :func:`greedy_decode`: batched greedy search with a KV cache, token for token the same as
  ``model.generate(do_sample=False, num_beams=1)``: each sequence stops at eos or at its own
  ``max_new_tokens``; finished sequences are fed ``pad`` while the others go on.
* :func:`score_labels`: one batched, teacher-forced pass of the first-step decoder over every
  candidate label; returns a probability per label (softmax over the labels' log-likelihoods).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Arrays = Mapping[str, np.ndarray]
GraphFn = Callable[[dict[str, np.ndarray]], Arrays]

PRESENT = "present."
PAST = "past_key_values."
CROSS = ".encoder."  # cross-attention cache: computed once by the first step, then passed back


def _max_tokens(max_new_tokens: int | Sequence[int], batch: int) -> np.ndarray:
    limits = np.broadcast_to(np.asarray(max_new_tokens, dtype=np.int64), (batch,)).copy()
    if np.any(limits < 1):
        raise ValueError(f"max_new_tokens must be >= 1, got {limits.tolist()}")
    return limits


def _past_from(outputs: Arrays, past: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``present.*`` outputs renamed to ``past_key_values.*`` inputs (cross-attention kept)."""
    updated = dict(past)
    for name, value in outputs.items():
        if name.startswith(PRESENT):
            updated[PAST + name[len(PRESENT) :]] = value
    return updated


def greedy_decode(
    encode_fn: GraphFn,
    decoder_first_fn: GraphFn,
    decoder_past_fn: GraphFn,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    max_new_tokens: int | Sequence[int],
    eos_id: int,
    pad_id: int,
) -> list[list[int]]:
    """Greedy generation for a padded batch; returns each sequence's new tokens (eos included
    when generated, no decoder-start token, no trailing pads).

    ``max_new_tokens`` is one limit for all or one per sequence (requests batched together
    may ask for different lengths). ``pad_id`` is T5's decoder start token.

    Raises:
        ValueError: a limit is below 1 or the batch shapes disagree.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    attention_mask = np.asarray(attention_mask, dtype=np.int64)
    if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"input_ids {input_ids.shape} and attention_mask {attention_mask.shape} must be equal 2-D shapes"
        )
    batch = input_ids.shape[0]
    limits = _max_tokens(max_new_tokens, batch)
    hidden = encode_fn({"input_ids": input_ids, "attention_mask": attention_mask})["last_hidden_state"]
    start = np.full((batch, 1), pad_id, dtype=np.int64)
    outputs = decoder_first_fn(
        {"input_ids": start, "encoder_attention_mask": attention_mask, "encoder_hidden_states": hidden}
    )
    past = _past_from(outputs, {})
    generated: list[list[int]] = [[] for _ in range(batch)]
    finished = np.zeros(batch, dtype=bool)
    for step in range(int(limits.max())):
        token = np.argmax(outputs["logits"][:, -1, :], axis=-1).astype(np.int64)
        token = np.where(finished, pad_id, token)
        for row in np.flatnonzero(~finished):
            generated[row].append(int(token[row]))
        finished |= (token == eos_id) | (step + 1 >= limits)
        if finished.all():
            break
        outputs = decoder_past_fn({"input_ids": token[:, None], "encoder_attention_mask": attention_mask, **past})
        past = _past_from(outputs, past)
    return generated


def _log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def label_log_likelihoods(
    decoder_first_fn: GraphFn,
    encoder_hidden_states: np.ndarray,
    encoder_attention_mask: np.ndarray,
    label_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> np.ndarray:
    """Sum of token log-probabilities of each label (its tokens incl. ``</s>``) per input: (batch, labels).

    All (input, label) pairs go through ``decoder_first_fn`` in one call: decoder input is
    ``[pad] + label[:-1]`` padded at the end with ``pad`` (causal attention: trailing pads do
    not change earlier positions).
    """
    batch, num_labels = encoder_hidden_states.shape[0], len(label_ids)
    if num_labels == 0 or any(len(ids) == 0 for ids in label_ids):
        raise ValueError("every label needs at least one token")
    length = max(len(ids) for ids in label_ids)
    targets = np.full((num_labels, length), pad_id, dtype=np.int64)
    valid = np.zeros((num_labels, length), dtype=bool)
    for i, ids in enumerate(label_ids):
        targets[i, : len(ids)] = ids
        valid[i, : len(ids)] = True
    decoder_ids = np.concatenate([np.full((num_labels, 1), pad_id, dtype=np.int64), targets[:, :-1]], axis=1)
    feeds = {
        "input_ids": np.tile(decoder_ids, (batch, 1)),
        "encoder_attention_mask": np.repeat(np.asarray(encoder_attention_mask, dtype=np.int64), num_labels, axis=0),
        "encoder_hidden_states": np.repeat(encoder_hidden_states, num_labels, axis=0),
    }
    log_probs = _log_softmax(np.asarray(decoder_first_fn(feeds)["logits"]))  # (batch * labels, length, vocab)
    picked = np.take_along_axis(log_probs, np.tile(targets, (batch, 1))[..., None], axis=-1)[..., 0]
    sums = np.where(np.tile(valid, (batch, 1)), picked, 0.0).sum(axis=-1)
    return sums.reshape(batch, num_labels)


def score_labels(
    decoder_first_fn: GraphFn,
    encoder_hidden_states: np.ndarray,
    encoder_attention_mask: np.ndarray,
    label_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> np.ndarray:
    """Probability of each candidate label per input, (batch, labels) float32 rows summing to 1."""
    sums = label_log_likelihoods(decoder_first_fn, encoder_hidden_states, encoder_attention_mask, label_ids, pad_id)
    return np.exp(_log_softmax(sums)).astype(np.float32)
