"""Greedy decoding with a KV cache and label scoring for T5, over step callables.

The steps are callables ``step(inputs: dict, outputs: list) -> dict`` (or coroutines with the
same signature), so the same code runs inside Triton (BLS calls,
:mod:`tritonize.backends.t5_generate`) and in tests or benchmarks (ONNX Runtime sessions,
PyTorch modules). Tensor names follow :func:`tritonize.export.tensors.t5_graphs` (Optimum's
names).

Greedy matches ``model.generate(do_sample=False, num_beams=1)``: argmax at every step, a row
stops at eos or at ``max_new_tokens``; rows that finished leave the batch, so the remaining
steps compute only what is still running (HF keeps feeding them pad; the live rows' results
do not depend on it).

Why the loops are generators of :class:`StepCall`: one algorithm, two drivers. The sync
driver (:func:`greedy_decode`, :func:`score_labels`) calls plain step functions; the async
driver (:func:`greedy_decode_async`, :func:`score_labels_async`) awaits BLS ``async_exec``,
so several groups of one ``execute()`` are in flight at once and meet in the steps' batchers.

Why the array adapters: the CPU path keeps numpy arrays (BLS outputs in host memory, ORT);
the GPU path receives step outputs as torch CUDA tensors (DLPack) and keeps the KV cache,
the argmax and the row selection on the device. Only the chosen token ids (one int per row
and step) and the per-label sums come back to the host. torch is imported only when a
torch tensor shows up, so the CPU path and the Triton image without torch need none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray, or torch.Tensor on any device
Step = Callable[[dict[str, Array], list[str]], dict[str, Array]]
AsyncStep = Callable[[dict[str, Array], list[str]], Awaitable[dict[str, Array]]]

DECODER = "decoder"
DECODER_WITH_PAST = "decoder_with_past"


def kv_names(prefix: str, num_layers: int, attentions: Sequence[str] = ("decoder", "encoder")) -> list[str]:
    return [f"{prefix}.{i}.{a}.{p}" for i in range(num_layers) for a in attentions for p in ("key", "value")]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class NumpyOps:
    """Host arrays: the embedded and CPU targets, ONNX Runtime steps."""

    def like(self, value: Any, reference: Any) -> np.ndarray:
        return value

    def to_host(self, x: np.ndarray) -> np.ndarray:
        return x

    def last_argmax(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, -1, :].argmax(axis=-1)

    def token_column(self, tokens: np.ndarray) -> np.ndarray:
        return tokens.reshape(-1, 1).astype(np.int64)

    def select_rows(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return x[keep]

    def repeat_rows(self, x: np.ndarray, times: int) -> np.ndarray:
        return np.repeat(x, times, axis=0)

    def concat_rows(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts, axis=0)

    def label_log_likelihoods(self, logits: np.ndarray, targets: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Sum over positions of log p(target) where ``valid``; float64 [rows]."""
        logp = log_softmax(logits)  # [rows, width, vocab]
        picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
        return (picked * valid).sum(axis=-1)


class TorchOps:
    """torch tensors on their own device (the GPU target): host numpy goes to the tensor's device."""

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def like(self, value: Any, reference: Any) -> Any:
        if isinstance(value, np.ndarray):
            return self.torch.from_numpy(np.ascontiguousarray(value)).to(reference.device)
        return value.to(reference.device)

    def to_host(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def last_argmax(self, logits: Any) -> Any:
        return logits[:, -1, :].argmax(dim=-1)

    def token_column(self, tokens: Any) -> Any:
        return tokens.reshape(-1, 1).to(self.torch.int64)

    def select_rows(self, x: Any, keep: np.ndarray) -> Any:
        index = self.torch.from_numpy(np.flatnonzero(keep)).to(x.device)
        return x.index_select(0, index)

    def repeat_rows(self, x: Any, times: int) -> Any:
        return x.repeat_interleave(times, dim=0)

    def concat_rows(self, parts: Sequence[Any]) -> Any:
        return self.torch.cat(list(parts), dim=0)

    def label_log_likelihoods(self, logits: Any, targets: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """As :meth:`NumpyOps.label_log_likelihoods`, computed on the device; [rows] comes back."""
        logp = self.torch.log_softmax(logits.double(), dim=-1)
        picked = logp.gather(-1, self.like(targets, logits)[..., None])[..., 0]
        return self.to_host((picked * self.like(valid, logits)).sum(dim=-1))


NUMPY_OPS = NumpyOps()


def array_ops(x: Any) -> NumpyOps | TorchOps:
    """The adapter for the kind of array ``x`` is. Raises TypeError for anything else."""
    if isinstance(x, np.ndarray):
        return NUMPY_OPS
    if type(x).__module__.split(".")[0] == "torch":
        return TorchOps()
    raise TypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")


@dataclass(frozen=True)
class StepCall:
    """One engine call a decoding program asks for; the driver sends back the named outputs."""

    step: str  # DECODER or DECODER_WITH_PAST
    inputs: dict[str, Array]
    outputs: list[str]


Program = Generator[StepCall, dict[str, Array], Any]


def run_program(program: Program, steps: dict[str, Step]) -> Any:
    """Drive ``program`` with plain step functions; returns its result."""
    reply = None
    while True:
        try:
            call = program.send(reply)
        except StopIteration as done:
            return done.value
        reply = steps[call.step](call.inputs, call.outputs)


async def run_program_async(program: Program, steps: dict[str, AsyncStep]) -> Any:
    """Drive ``program`` with step coroutines; other programs run while a step is awaited."""
    reply = None
    while True:
        try:
            call = program.send(reply)
        except StopIteration as done:
            return done.value
        reply = await steps[call.step](call.inputs, call.outputs)


async def gather_all(*awaitables: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather`` that lets every awaitable finish, then raises the first failure.

    Why: plain gather returns at the first error while the others keep issuing BLS calls
    after the responses were sent.
    """
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _check_new_tokens(max_new_tokens: int) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def greedy_program(
    encoder_hidden_states: Array,
    attention_mask: Array,
    max_new_tokens: int,
    eos_id: int,
    start_id: int,
    num_layers: int,
) -> Program:
    """Greedy decoding as a program of step calls; returns generated ids per row."""
    ops = array_ops(encoder_hidden_states)
    rows = encoder_hidden_states.shape[0]
    generated: list[list[int]] = [[] for _ in range(rows)]
    mask = ops.like(attention_mask, encoder_hidden_states)
    first = yield StepCall(
        DECODER,
        {
            "input_ids": ops.like(np.full((rows, 1), start_id, dtype=np.int64), encoder_hidden_states),
            "encoder_attention_mask": mask,
            "encoder_hidden_states": encoder_hidden_states,
        },
        ["logits", *kv_names("present", num_layers)],
    )
    cache = {name.replace("present", "past_key_values", 1): first[name] for name in kv_names("present", num_layers)}
    active = np.arange(rows)
    next_tokens = ops.last_argmax(first["logits"])
    self_names = kv_names("present", num_layers, ("decoder",))
    for step in range(max_new_tokens):
        tokens = ops.to_host(next_tokens)  # the only device -> host copy of a step
        for row, token in zip(active, tokens):
            generated[row].append(int(token))
        keep = tokens != eos_id
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            active = active[keep]
            next_tokens, mask = ops.select_rows(next_tokens, keep), ops.select_rows(mask, keep)
            cache = {k: ops.select_rows(v, keep) for k, v in cache.items()}
        out = yield StepCall(
            DECODER_WITH_PAST,
            {"input_ids": ops.token_column(next_tokens), "encoder_attention_mask": mask, **cache},
            ["logits", *self_names],
        )
        for name in self_names:
            cache[name.replace("present", "past_key_values", 1)] = out[name]
        next_tokens = ops.last_argmax(out["logits"])
    return generated


def greedy_decode(
    decoder: Step,
    decoder_with_past: Step,
    encoder_hidden_states: Array,
    attention_mask: Array,
    max_new_tokens: int,
    eos_id: int,
    start_id: int,
    num_layers: int,
) -> list[list[int]]:
    """Generated token ids per row (eos included when reached, decoder start excluded).

    Arrays are numpy or torch tensors (then the steps take and return torch tensors on the
    encoder states' device; ``attention_mask`` may be numpy).

    Raises ValueError for ``max_new_tokens`` < 1.
    """
    _check_new_tokens(max_new_tokens)
    program = greedy_program(encoder_hidden_states, attention_mask, max_new_tokens, eos_id, start_id, num_layers)
    return run_program(program, {DECODER: decoder, DECODER_WITH_PAST: decoder_with_past})


async def greedy_decode_async(
    decoder: AsyncStep,
    decoder_with_past: AsyncStep,
    encoder_hidden_states: Array,
    attention_mask: Array,
    max_new_tokens: int,
    eos_id: int,
    start_id: int,
    num_layers: int,
) -> list[list[int]]:
    """:func:`greedy_decode` with step coroutines. Raises ValueError for ``max_new_tokens`` < 1."""
    _check_new_tokens(max_new_tokens)
    program = greedy_program(encoder_hidden_states, attention_mask, max_new_tokens, eos_id, start_id, num_layers)
    return await run_program_async(program, {DECODER: decoder, DECODER_WITH_PAST: decoder_with_past})


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    """Each label's target ids as the model would emit them (``</s>`` appended by the tokenizer)."""
    return [list(tokenizer.encode(label, add_special_tokens=True).ids) for label in labels]


def score_program(
    encoder_hidden_states: Array,
    attention_mask: Array,
    label_ids: Sequence[Sequence[int]],
    start_id: int,
    pad_id: int,
) -> Program:
    """Label scoring as a program of one step call; returns float32 [rows, labels] probabilities."""
    ops = array_ops(encoder_hidden_states)
    rows, num_labels = encoder_hidden_states.shape[0], len(label_ids)
    width = max(len(ids) for ids in label_ids)
    targets = np.full((num_labels, width), pad_id, dtype=np.int64)
    valid = np.zeros((num_labels, width), dtype=bool)
    for i, ids in enumerate(label_ids):
        targets[i, : len(ids)] = ids
        valid[i, : len(ids)] = True
    inputs = np.concatenate([np.full((num_labels, 1), start_id, dtype=np.int64), targets[:, :-1]], axis=1)
    mask = ops.like(attention_mask, encoder_hidden_states)
    out = yield StepCall(
        DECODER,
        {
            "input_ids": ops.like(np.tile(inputs, (rows, 1)), encoder_hidden_states),
            "encoder_attention_mask": ops.repeat_rows(mask, num_labels),
            "encoder_hidden_states": ops.repeat_rows(encoder_hidden_states, num_labels),
        },
        ["logits"],
    )
    sums = ops.label_log_likelihoods(out["logits"], np.tile(targets, (rows, 1)), np.tile(valid, (rows, 1)))
    sums = sums.reshape(rows, num_labels)
    sums = sums - sums.max(axis=1, keepdims=True)
    probs = np.exp(sums)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def score_labels(
    decoder: Step,
    encoder_hidden_states: Array,
    attention_mask: Array,
    label_ids: Sequence[Sequence[int]],
    start_id: int,
    pad_id: int,
) -> np.ndarray:
    """Softmax over the labels' sequence log-likelihoods, one teacher-forced decoder pass.

    Every (row, label) pair is one decoder row: input ``[start] + label[:-1]`` padded with
    ``pad_id`` to the longest label (causal attention keeps padding from touching earlier
    positions), and the log-probabilities of the label's tokens are summed.
    """
    program = score_program(encoder_hidden_states, attention_mask, label_ids, start_id, pad_id)
    return run_program(program, {DECODER: decoder})


async def score_labels_async(
    decoder: AsyncStep,
    encoder_hidden_states: Array,
    attention_mask: Array,
    label_ids: Sequence[Sequence[int]],
    start_id: int,
    pad_id: int,
) -> np.ndarray:
    """:func:`score_labels` with a step coroutine."""
    program = score_program(encoder_hidden_states, attention_mask, label_ids, start_id, pad_id)
    return await run_program_async(program, {DECODER: decoder})
