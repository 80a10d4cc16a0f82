"""T5 three-graph export, per-step validation, and decoding parity with Hugging Face generate."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest_export import one_thread, scratch_dir, shipped_spec, tiny_t5, tiny_t5_export  # noqa: F401
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from tritonize.backends.t5_decoding import greedy_decode, score_labels
from tritonize.corpus import builtin_emotion, builtin_reviews
from tritonize.demo.t5 import build_t5
from tritonize.errors import ValidationError
from tritonize.export.t5 import T5_FILES, export_t5
from tritonize.export.t5_validate import ort_runners, validate_t5
from tritonize.export.tensors import T5_COMPONENTS, t5_graphs

pytestmark = pytest.mark.usefixtures("one_thread")
DEMOS = ("t5-small", "flan-t5-small", "t5-base")
BATCH = 16


def _texts(demo: str) -> list[str]:
    return [e.text for e in (builtin_reviews() if demo == "t5-base" else builtin_emotion())]


def _validation_texts(demo: str) -> list[str]:
    texts = _texts(demo)
    return sorted(texts, key=len)[-6:] + texts[:10]  # the longest (512-token truncation) and short ones


def _strip_pads(tokens: list[int], pad: int = 0) -> list[int]:
    tokens = list(tokens)
    while tokens and tokens[-1] == pad:
        tokens.pop()
    return tokens


@pytest.mark.parametrize("demo", DEMOS)
def test_export_t5_writes_three_graphs_with_declared_names(demo: str):
    exported = tiny_t5_export(demo)
    config = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5(demo)).config
    assert set(exported.paths) == set(T5_COMPONENTS)
    assert exported.num_decoder_layers == config.num_decoder_layers
    for component, decl in t5_graphs(config).items():
        graph = onnx.load(str(exported.paths[component])).graph
        assert exported.paths[component].name == T5_FILES[component]
        assert [i.name for i in graph.input] == [t.name for t in decl.inputs]
        assert [o.name for o in graph.output] == [t.name for t in decl.outputs]
        assert not any(node.op_type == "If" for node in graph.node)


@pytest.mark.parametrize("demo", DEMOS)
def test_validate_t5_passes_within_1e4_per_graph(demo: str):
    report = validate_t5(tiny_t5(demo), tiny_t5_export(demo), _validation_texts(demo), tolerance=1e-4)
    assert set(report["graphs"]) == set(T5_FILES.values())
    assert all(g["max_abs_diff"] < 1e-4 for g in report["graphs"].values())
    assert report["decoder_steps"] >= 2


def test_validate_t5_raises_listing_every_graph_when_checkpoint_differs():
    # t5-small's graphs checked against another checkpoint of the same vocabulary and shape family
    other = scratch_dir("t5-other")
    build_t5("t5-small", "tiny", shipped_spec("t5-small").labels, other, seed=3)
    with pytest.raises(ValidationError) as info:
        validate_t5(other, tiny_t5_export("t5-small"), _texts("t5-small")[:4], tolerance=1e-4)
    failed = {f.split()[0] for f in info.value.failures}
    assert set(T5_FILES.values()) <= failed


def test_validate_t5_reports_missing_graph(tmp_path):
    exported = export_t5(tiny_t5("t5-small"), tmp_path)
    exported.paths["decoder_with_past"].unlink()
    with pytest.raises(ValidationError, match="decoder_with_past_model.onnx"):
        validate_t5(tiny_t5("t5-small"), tmp_path, _texts("t5-small")[:2], tolerance=1e-4)


def _steps(runners) -> dict:
    """ORT runners as the (inputs, outputs) -> dict step callables the decoding loop takes."""
    return {c: (lambda inputs, outputs, r=r: {k: v for k, v in r(inputs).items() if k in outputs}) for c, r in runners.items()}


def _decode(exported, batch, max_new_tokens: int, eos_id: int) -> list[list[int]]:
    steps = _steps(ort_runners(exported))
    hidden = steps["encoder"](dict(batch), ["last_hidden_state"])["last_hidden_state"]
    return greedy_decode(
        steps["decoder"], steps["decoder_with_past"], hidden, batch["attention_mask"], max_new_tokens,
        eos_id, exported.decoder_start_token_id, exported.num_decoder_layers,
    )  # fmt: skip


def _generate_both(demo: str, max_new_tokens: int, eos_id: int):
    path = tiny_t5(demo)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    exported = tiny_t5_export(demo)
    texts = _texts(demo)
    ours, theirs = [], []
    for start in range(0, len(texts), BATCH):
        batch = tokenizer(
            texts[start : start + BATCH], padding=True, truncation=True, max_length=512, return_tensors="np"
        )
        ours += _decode(exported, {k: batch[k] for k in ("input_ids", "attention_mask")}, max_new_tokens, eos_id)
        with torch.no_grad():
            generated = model.generate(
                input_ids=torch.from_numpy(batch["input_ids"]),
                attention_mask=torch.from_numpy(batch["attention_mask"]),
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=eos_id,
            )  # fmt: skip
        theirs += [_strip_pads(row[1:]) for row in generated.tolist()]
    return [_strip_pads(t) for t in ours], theirs


@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.parametrize("steps", ["spec", 8])
def test_greedy_decode_matches_hf_generate_token_for_token(demo: str, steps):
    max_new_tokens = shipped_spec(demo).max_new_tokens if steps == "spec" else steps
    ours, theirs = _generate_both(demo, max_new_tokens, eos_id=1)
    assert ours == theirs
    assert len({tuple(t) for t in ours}) >= 2


@pytest.mark.parametrize("demo", ["t5-small", "flan-t5-small"])
def test_greedy_decode_matches_hf_generate_when_eos_never_comes(demo: str):
    # eos = <unk> is never generated: every row runs all 8 steps through decoder_with_past
    ours, theirs = _generate_both(demo, 8, eos_id=2)
    assert ours == theirs
    assert all(len(t) == 8 for t in ours)


def test_greedy_decode_rows_do_not_depend_on_their_batch():
    # finished rows leave the batch and the BLS cuts each row at its own limit: both rely on
    # a row's tokens being the same alone and in any batch
    demo = "flan-t5-small"
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5(demo))
    exported = tiny_t5_export(demo)
    texts = _texts(demo)[:6]
    batch = dict(tokenizer(texts, padding=True, return_tensors="np"))
    together = _decode(exported, batch, 8, eos_id=2)
    alone = [_decode(exported, dict(tokenizer([t], return_tensors="np")), 8, eos_id=2)[0] for t in texts]
    assert together == alone
    assert [row[:3] for row in together] == _decode(exported, batch, 3, eos_id=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        _decode(exported, batch, 0, eos_id=1)


def _torch_label_probs(model, batch, label_ids: list[list[int]]) -> np.ndarray:
    sums = []
    with torch.no_grad():
        for ids in label_ids:
            labels = torch.tensor([ids] * batch["input_ids"].shape[0])
            logits = model(**batch, labels=labels).logits
            picked = torch.log_softmax(logits.double(), -1).gather(-1, labels[..., None])[..., 0]
            sums.append(picked.sum(-1))
    return torch.softmax(torch.stack(sums, dim=1), dim=1).numpy()


@pytest.mark.parametrize("demo", DEMOS)
def test_score_labels_matches_pytorch_within_1e4(demo: str):
    path = tiny_t5(demo)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    steps = _steps(ort_runners(tiny_t5_export(demo)))
    labels = list(shipped_spec(demo).labels) + ["not a label"]  # a multi-token candidate too
    label_ids = [tokenizer(label).input_ids for label in labels]  # label tokens + </s>
    texts = _validation_texts(demo)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="np")
    hidden = steps["encoder"](dict(batch), ["last_hidden_state"])["last_hidden_state"]
    probs = score_labels(steps["decoder"], hidden, batch["attention_mask"], label_ids, start_id=0, pad_id=0)
    expected = _torch_label_probs(model, {k: torch.from_numpy(v) for k, v in batch.items()}, label_ids)
    assert probs.shape == (len(texts), len(labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert float(np.abs(probs - expected).max()) < 1e-4
    assert len(set(probs.argmax(axis=1).tolist())) >= 2  # the scores depend on the input


def test_names_moved_out_of_the_export_module_still_import_with_a_deprecation_warning():
    import tritonize.export.t5 as t5
    from tritonize.export import t5_torch, t5_validate

    with pytest.warns(DeprecationWarning, match="moved to tritonize.export.t5_validate"):
        assert t5.validate_t5 is t5_validate.validate_t5
    with pytest.warns(DeprecationWarning, match="moved to tritonize.export.t5_torch"):
        assert t5.torch_runners is t5_torch.torch_runners
