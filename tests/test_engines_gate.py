"""The T5 accuracy gate's token agreement: teacher-forced, so one flipped decision counts once,
not once for every token generated after it; ties within the spec's margin are excused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_export import one_thread, scratch_dir, shipped_spec, tiny_t5, tiny_t5_export  # noqa: F401

from tritonize.engines.validate import Gate, ort_step, token_batches, token_changes, validate_t5_steps
from tritonize.errors import ValidationError

DEMO = "t5-small"
NEW_TOKENS = 4


def _flip_first_token(step, row: int):
    """The real ONNX Runtime decoder step, except that ``row``'s first token is moved to FP32's
    least likely token by a wide margin: one confident wrong decision, as a broken engine makes."""

    def run(feeds, wanted):
        out = dict(step(feeds, wanted))
        logits = out["logits"].copy()
        last = logits[row, -1]
        last[last.argmin()] = last.max() + 50.0
        out["logits"] = logits
        return out

    return run


def _inputs():
    from tritonize.corpus import builtin_for_labels
    from tritonize.pipeline.checkpoints import save_tokenizer_json

    model = shipped_spec(DEMO)
    exported = tiny_t5_export(DEMO)
    tokenizer_json, pad = save_tokenizer_json(str(tiny_t5(DEMO)), scratch_dir("gate-tokenizer"))
    texts = [e.text for e in builtin_for_labels(model.labels)][:8]
    batches = token_batches(tokenizer_json, model, pad, texts)
    decoding = {"eos_token_id": exported.eos_token_id, "decoder_start_token_id": exported.decoder_start_token_id,
                "num_decoder_layers": exported.num_decoder_layers, "pad_token_id": pad}
    reference = {c: ort_step(p) for c, p in exported.paths.items()}
    return batches[1:3], decoding, reference  # 3 and 8 rows


@pytest.mark.usefixtures("one_thread")
def test_one_flipped_first_token_counts_once_under_teacher_forcing_and_fails_a_strict_gate():
    batches, decoding, reference = _inputs()
    candidate = {**reference, "decoder": _flip_first_token(reference["decoder"], row=0)}
    lenient = Gate(min_agreement=0.0, tie_margin=0.01)
    figures = validate_t5_steps("flip", reference, candidate, batches, decoding, [], NEW_TOKENS, lenient)
    same = validate_t5_steps("same", reference, reference, batches, decoding, [], NEW_TOKENS, lenient)
    assert same["token_agreement"] == same["token_strict_agreement"] == same["sequence_agreement"] == 1.0
    positions = round(1 / (1 - figures["token_strict_agreement"]))  # exactly one position changed
    assert positions > NEW_TOKENS  # several rows, several positions each
    assert figures["token_agreement"] == pytest.approx((positions - 1) / positions)
    assert figures["token_ties"] == 0  # FP32 rated the flipped-to token least likely: no tie
    assert figures["sequence_agreement"] < 1.0  # free-running, the served row 0 does differ
    with pytest.raises(ValidationError, match="agreement with FP32"):
        validate_t5_steps("flip", reference, candidate, batches, decoding, [], NEW_TOKENS,
                          Gate(min_agreement=1.0, tie_margin=0.01))


def test_token_changes_excuse_a_changed_token_only_when_fp32_rated_it_within_the_tie_margin():
    def probs(*values):
        return np.array(values, dtype=np.float64)

    fp32 = [[probs(0.6, 0.3, 0.1), probs(0.1, 0.505, 0.395)], [probs(0.2, 0.3, 0.5)]]
    # FP32 chose tokens 0, 1 (row 0) and 2 (row 1). Row 0 keeps token 0, then picks 2 where FP32 had
    # 0.505 vs 0.395 (not a tie); row 1 picks 1, 0.5 vs 0.3
    compiled = [[probs(0.7, 0.2, 0.1), probs(0.1, 0.4, 0.5)], [probs(0.2, 0.45, 0.35)]]
    assert token_changes(fp32, compiled, tie_margin=0.01) == (3, 2, 0)
    assert token_changes(fp32, compiled, tie_margin=0.11) == (3, 1, 1)
    assert token_changes(fp32, compiled, tie_margin=0.2) == (3, 0, 2)
    assert token_changes(fp32, fp32, tie_margin=0.0) == (3, 0, 0)
