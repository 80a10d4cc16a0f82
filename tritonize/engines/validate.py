"""The accuracy gate: a faster graph (TensorRT engine, INT8 ONNX) against the FP32 ONNX, as served.

Like the ONNX validation, it collects every failure into one error. Inputs are tokenized by
the serving tokenizer code (bucket padding, joint per batch as on the gpu target), in batch
sizes that differ from the profile's opt, so shapes off the tuned point are checked too.
Reported per deployment:

* classifier: max |logits - FP32 logits| against the spec's per-precision tolerance, top-1
  agreement against ``min_agreement``, max probability difference. A changed top-1 counts as a
  tie, not a disagreement, when FP32 itself rated the candidate's class within ``tie_margin`` of
  its own best: such a row has no decision to keep (a barely trained model is all ties, and
  any rounding flips them), while the probability gate still bounds how far it moved. Strict
  agreement and the tie count are reported beside it;
* T5: max |encoder output - FP32| over the tokens the decoder attends to (padding positions
  are masked out of cross-attention, so no served result depends on them, and reduced
  precision moves them most: BF16 on the tiny flan-T5 demo, 0.06 on tokens, 1.7 on padding),
  token agreement through the served decoding loop under teacher forcing (FP32's greedy tokens
  fed to both, each position one decision; ties within ``tie_margin`` excused, strict agreement
  beside it), exact free-running sequences as served, label-scoring probability difference
  when it has labels.

Both sides are step callables ``(inputs, outputs) -> outputs``: ONNX Runtime for the reference;
for the candidate a profiled step (:mod:`tritonize.engines.runners`: the TensorRT engine, or its
ONNX Runtime stand-in in a rehearsal), or another ONNX Runtime graph (INT8, or a test's). Batches
never exceed the deployment's ``max_batch_size``, as Triton never sends more; steps that fan rows
out (label scoring sends rows x labels to the decoder) rely on the profiled step to split them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.backends import t5_decoding
from tritonize.backends.postprocess_step import softmax
from tritonize.backends.tokenize_step import TokenizerSettings, load_tokenizer, pad_batch
from tritonize.errors import ValidationError
from tritonize.export.validate import compare
from tritonize.spec import ModelSpec

Step = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]
BATCH_SIZES = (1, 3, 8, 5)  # cycled, each at most max_batch_size; none is a typical profile opt


@dataclass(frozen=True, kw_only=True)
class Gate:
    """What a faster graph must keep: ``min_agreement`` (top-1 / teacher-forced greedy tokens; ties
    within ``tie_margin`` excused), and optionally ``tolerance`` (max |output - FP32 output|) and
    ``max_prob_diff`` (max |probability - FP32|)."""

    min_agreement: float
    tolerance: float | None = None
    max_prob_diff: float | None = None
    tie_margin: float = 0.0

    @classmethod
    def of(cls, model: ModelSpec, tolerance: float | None) -> Gate:
        """The spec's gate for ``model`` with the output ``tolerance`` of the precision compiled."""
        return cls(
            min_agreement=model.gate.min_agreement,
            tolerance=tolerance,
            max_prob_diff=model.gate.max_prob_diff,
            tie_margin=model.gate.tie_margin,
        )

    def check(self, name: str, diff: float, agreement: float, prob_diff: float, what: str, failures: list[str]) -> None:
        """Add the gate's own failures to ``failures``; raise ValidationError for ``name`` when any."""
        if self.tolerance is not None and diff > self.tolerance:
            failures.append(f"max |{what} - FP32| = {diff:.3g} > tolerance {self.tolerance:g}")
        if agreement < self.min_agreement:
            failures.append(f"agreement with FP32 {agreement:.4f} < min_agreement {self.min_agreement:g}")
        if self.max_prob_diff is not None and prob_diff > self.max_prob_diff:
            failures.append(f"max |probability - FP32| = {prob_diff:.3g} > max_prob_diff {self.max_prob_diff:g}")
        if failures:
            raise ValidationError(name, failures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top1_changes(expected_probs: np.ndarray, actual_probs: np.ndarray, tie_margin: float) -> tuple[int, int]:
    """(disagreements, ties) among rows whose top-1 class changed: a tie when FP32's probability of
    the candidate's class is within ``tie_margin`` of FP32's best."""
    ours, theirs = expected_probs.argmax(-1), actual_probs.argmax(-1)
    changed = np.nonzero(ours != theirs)[0]
    gap = expected_probs[changed, ours[changed]] - expected_probs[changed, theirs[changed]]
    ties = int((gap <= tie_margin).sum())
    return len(changed) - ties, ties


def ort_step(onnx_path: Path) -> Step:
    """An ONNX Runtime session on the CPU as a step callable."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(feeds: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        return dict(zip(wanted, session.run(wanted, dict(feeds))))

    return run


def token_batches(tokenizer_json: Path, model: ModelSpec, pad_token_id: int, texts: Sequence[str]) -> list[dict]:
    """(input_ids, attention_mask) batches of the served tokenization, sizes from :data:`BATCH_SIZES`
    capped at ``model.batching.max_batch_size`` (the most rows Triton sends a step)."""
    tokenizer = load_tokenizer(str(Path(tokenizer_json).parent), model.max_input_length)
    settings = TokenizerSettings(
        max_input_length=model.max_input_length, length_buckets=model.length_buckets, pad_token_id=pad_token_id
    )
    ids = [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=True)]
    batches, start, k = [], 0, 0
    while start < len(ids):
        group = ids[start : start + min(BATCH_SIZES[k % len(BATCH_SIZES)], model.batching.max_batch_size)]
        input_ids, mask = pad_batch(group, settings.bucket_for(max(len(s) for s in group)), pad_token_id)
        batches.append({"input_ids": input_ids, "attention_mask": mask})
        start, k = start + len(group), k + 1
    return batches


def _max_diff(where: str, expected: np.ndarray, actual: np.ndarray, failures: list[str]) -> float:
    """Max |compiled - FP32| (shape and NaN/Inf failures recorded; the gate judges the value)."""
    return compare(where, expected, actual, None, failures, names=("compiled", "FP32"))


def validate_classifier_step(
    name: str, reference: Step, candidate: Step, batches: list[dict], gate: Gate
) -> dict[str, Any]:
    """Compare logits batch by batch. Raises ValidationError listing every failure."""
    failures: list[str] = []
    max_diff, max_prob_diff, disagree, ties, rows = 0.0, 0.0, 0, 0, 0
    for i, batch in enumerate(batches):
        expected = reference(batch, ["logits"])["logits"]
        actual = candidate(batch, ["logits"])["logits"]
        where = f"batch {i} shape {list(batch['input_ids'].shape)} logits"
        diff = _max_diff(where, expected, actual, failures)
        max_diff = max(max_diff, diff)
        if np.isfinite(diff):
            expected_probs, actual_probs = softmax(expected), softmax(actual)
            changed, tied = top1_changes(expected_probs, actual_probs, gate.tie_margin)
            disagree, ties = disagree + changed, ties + tied
            max_prob_diff = max(max_prob_diff, float(np.abs(expected_probs - actual_probs).max()))
        else:
            disagree += expected.shape[0]
        rows += expected.shape[0]
    agreement = (rows - disagree) / rows if rows else 0.0
    gate.check(name, max_diff, agreement, max_prob_diff, "logits", failures)
    return {
        "max_abs_diff": max_diff,
        "top1_agreement": agreement,
        "top1_strict_agreement": (rows - disagree - ties) / rows if rows else 0.0,
        "top1_ties": ties,
        "max_prob_diff": max_prob_diff,
        "num_texts": rows,
        "num_batches": len(batches),
        "gate": gate.to_dict(),
    }


def _attended_diff(where: str, expected: np.ndarray, actual: np.ndarray, mask: np.ndarray, failures: list[str]) -> float:
    """Max |compiled - FP32| of encoder states at positions where ``mask`` is set."""
    if np.shape(expected) != np.shape(actual):
        return _max_diff(where, expected, actual, failures)
    keep = np.asarray(mask).astype(bool)
    return _max_diff(where, np.asarray(expected)[keep], np.asarray(actual)[keep], failures)


def _decode(steps: dict[str, Step], batch: dict, decoding: dict[str, int], max_new_tokens: int) -> tuple:
    hidden = steps["encoder"](batch, ["last_hidden_state"])["last_hidden_state"]
    tokens = t5_decoding.greedy_decode(
        steps["decoder"],
        steps["decoder_with_past"],
        hidden,
        batch["attention_mask"],
        max_new_tokens,
        decoding["eos_token_id"],
        decoding["decoder_start_token_id"],
        decoding["num_decoder_layers"],
    )
    return hidden, tokens


def forced_program(
    encoder_hidden_states: np.ndarray,
    attention_mask: np.ndarray,
    forced: Sequence[Sequence[int]],
    start_id: int,
    num_layers: int,
) -> t5_decoding.Program:
    """The served decoding loop (decoder, then decoder_with_past on the KV cache) fed ``forced``
    tokens instead of its own choices; returns per row the next-token probabilities at each of
    its forced positions (position p: given ``forced[row][:p]``).

    Why teacher forcing: in free-running greedy decoding one flipped near-tie changes every later
    input, so the tokens after it compare two different prefixes and measure nothing about the
    numerics. Fed the same prefix, each position is one decision of the compiled steps against
    FP32's, still through both engines (decoder, decoder_with_past) and the cache as served.
    """
    hidden = np.asarray(encoder_hidden_states)
    rows = hidden.shape[0]
    probs: list[list[np.ndarray]] = [[] for _ in range(rows)]
    mask = np.asarray(attention_mask)
    first = yield t5_decoding.StepCall(
        t5_decoding.DECODER,
        {
            "input_ids": np.full((rows, 1), start_id, dtype=np.int64),
            "encoder_attention_mask": mask,
            "encoder_hidden_states": hidden,
        },
        ["logits", *t5_decoding.kv_names("present", num_layers)],
    )
    cache = {
        name.replace("present", "past_key_values", 1): np.asarray(first[name])
        for name in t5_decoding.kv_names("present", num_layers)
    }
    self_names = t5_decoding.kv_names("present", num_layers, ("decoder",))
    active, logits, position = np.arange(rows), np.asarray(first["logits"])[:, -1], 0
    while True:
        for row, row_probs in zip(active, softmax(logits.astype(np.float64))):
            probs[row].append(row_probs)
        position += 1
        keep = np.array([len(forced[row]) > position for row in active])
        if not keep.any():
            return probs
        if not keep.all():
            active, mask = active[keep], mask[keep]
            cache = {k: v[keep] for k, v in cache.items()}
        tokens = np.array([[forced[row][position - 1]] for row in active], dtype=np.int64)
        out = yield t5_decoding.StepCall(
            t5_decoding.DECODER_WITH_PAST,
            {"input_ids": tokens, "encoder_attention_mask": mask, **cache},
            ["logits", *self_names],
        )
        for name in self_names:
            cache[name.replace("present", "past_key_values", 1)] = np.asarray(out[name])
        logits = np.asarray(out["logits"])[:, -1]


def forced_probabilities(
    steps: dict[str, Step], hidden: np.ndarray, batch: dict, forced: Sequence[Sequence[int]], decoding: dict[str, int]
) -> list[list[np.ndarray]]:
    """:func:`forced_program` driven by ``steps``."""
    program = forced_program(
        hidden, batch["attention_mask"], forced, decoding["decoder_start_token_id"], decoding["num_decoder_layers"]
    )
    return t5_decoding.run_program(
        program, {t5_decoding.DECODER: steps["decoder"], t5_decoding.DECODER_WITH_PAST: steps["decoder_with_past"]}
    )


def token_changes(
    expected: Sequence[Sequence[np.ndarray]], actual: Sequence[Sequence[np.ndarray]], tie_margin: float
) -> tuple[int, int, int]:
    """(positions, disagreements, ties) of the compiled steps' next-token probabilities against
    FP32's under teacher forcing: every position is one row of :func:`top1_changes`, the
    classifier gate's rule (FP32's top token is its greedy token: both runs take the same inputs)."""
    ours = np.stack([p for row in expected for p in row])
    theirs = np.stack([p for row in actual for p in row])
    return (len(ours), *top1_changes(ours, theirs, tie_margin))


def validate_t5_steps(
    name: str,
    reference: dict[str, Step],
    candidate: dict[str, Step],
    batches: list[dict],
    decoding: dict[str, int],
    label_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    gate: Gate,
) -> dict[str, Any]:
    """Encoder outputs, greedy decoding and label scoring of ``candidate`` vs ``reference``.

    Token agreement is taken under teacher forcing (:func:`forced_program`): each of FP32's greedy
    tokens against the candidate's choice after the same prefix, ties within ``gate.tie_margin``
    excused. Free-running greedy decoding of the candidate, as served, gives the exact-sequence
    agreement beside it. ``decoding`` holds eos_token_id, decoder_start_token_id,
    num_decoder_layers, pad_token_id. Raises ValidationError listing every failure.
    """
    failures: list[str] = []
    hidden_diff, prob_diff, positions, disagree, ties, same_rows, rows = 0.0, 0.0, 0, 0, 0, 0, 0
    for i, batch in enumerate(batches):
        ref_hidden, ref_tokens = _decode(reference, batch, decoding, max_new_tokens)
        hidden, tokens = _decode(candidate, batch, decoding, max_new_tokens)
        where = f"batch {i} encoder output"
        hidden_diff = max(hidden_diff, _attended_diff(where, ref_hidden, hidden, batch["attention_mask"], failures))
        expected = forced_probabilities(reference, ref_hidden, batch, ref_tokens, decoding)
        actual = forced_probabilities(candidate, hidden, batch, ref_tokens, decoding)
        counted = token_changes(expected, actual, gate.tie_margin)
        positions, disagree, ties = positions + counted[0], disagree + counted[1], ties + counted[2]
        same_rows += sum(want == got for want, got in zip(ref_tokens, tokens))
        rows += len(ref_tokens)
        if label_ids:
            args = (batch["attention_mask"], label_ids, decoding["decoder_start_token_id"], decoding["pad_token_id"])
            want = t5_decoding.score_labels(reference["decoder"], ref_hidden, *args)
            got = t5_decoding.score_labels(candidate["decoder"], hidden, *args)
            prob_diff = max(prob_diff, _max_diff(f"batch {i} label probabilities", want, got, failures))
    agreement = (positions - disagree) / positions if positions else 0.0
    gate.check(name, hidden_diff, agreement, prob_diff, "encoder output", failures)
    return {
        "encoder_max_abs_diff": hidden_diff,
        "token_agreement": agreement,
        "token_strict_agreement": (positions - disagree - ties) / positions if positions else 0.0,
        "token_ties": ties,
        "sequence_agreement": same_rows / rows if rows else 0.0,
        "label_prob_max_diff": prob_diff,
        "num_texts": rows,
        "max_new_tokens": max_new_tokens,
        "gate": gate.to_dict(),
    }
