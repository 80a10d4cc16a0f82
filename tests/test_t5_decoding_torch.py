"""The decoding loop on torch tensors end to end (the GPU target's path) vs Hugging Face on the same device.

The steps are the PyTorch modules ``export_t5`` traces (:func:`tritonize.export.t5_torch.torch_runners`),
so on a GPU the KV cache, the argmax and the row selection stay on the device as they do in
the served GPU path, and greedy decoding must stay token-exact with ``model.generate`` and label
scoring within 1e-4 of PyTorch's log-likelihoods. The ``cpu`` variants run everywhere; the
``cuda`` variants are marked ``gpu`` and skip without one.

Needs only torch, transformers, tokenizers and numpy (no tritonclient, no onnxruntime), so it
runs on a GPU machine without Triton:
``python -m pytest tests/test_t5_decoding_torch.py -m gpu -v``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest_export import one_thread, shipped_spec, tiny_t5  # noqa: F401

from tritonize.backends.t5_decoding import greedy_decode, score_labels
from tritonize.corpus import builtin_emotion

pytestmark = pytest.mark.usefixtures("one_thread")
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]
DEMOS = ("t5-small", "flan-t5-small")
BATCH = 16


@functools.cache
def _model(demo: str, device: str):
    from transformers import AutoTokenizer

    from tritonize.export.t5_torch import load_seq2seq

    path = tiny_t5(demo)
    return AutoTokenizer.from_pretrained(path), load_seq2seq(path, attn_implementation="eager").to(device)


class DeviceSteps:
    """torch step callables on one device; fails a call whose inputs are not tensors on that device."""

    def __init__(self, model, device: str) -> None:
        from tritonize.export.t5_torch import torch_runners

        self.runners = torch_runners(model)
        self.device = device
        self.misplaced: list[str] = []

    def __call__(self, component: str):
        import torch

        def step(inputs: dict, outputs: list[str]) -> dict:
            self.misplaced += [
                f"{component}.{k}" for k, v in inputs.items()
                if not isinstance(v, torch.Tensor) or v.device.type != self.device
            ]  # fmt: skip
            return {k: v for k, v in self.runners[component](inputs).items() if k in outputs}

        return step


def _strip_pads(tokens: list[int], pad: int = 0) -> list[int]:
    tokens = list(tokens)
    while tokens and tokens[-1] == pad:
        tokens.pop()
    return tokens


@pytest.mark.parametrize("eos_id", [1, 2], ids=["eos", "eos-never"])
@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.parametrize("device", DEVICES)
def test_greedy_decode_on_torch_tensors_matches_hf_generate_when_on_device(device: str, demo: str, eos_id: int):
    import torch

    tokenizer, model = _model(demo, device)
    steps = DeviceSteps(model, device)
    texts = [e.text for e in builtin_emotion()]
    ours, theirs = [], []
    for start in range(0, len(texts), BATCH):
        enc = tokenizer(texts[start : start + BATCH], padding=True, truncation=True, max_length=512, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = steps("encoder")(enc, ["last_hidden_state"])["last_hidden_state"]
        ours += greedy_decode(
            steps("decoder"), steps("decoder_with_past"), hidden, enc["attention_mask"], 8,
            eos_id, model.config.decoder_start_token_id, model.config.num_decoder_layers,
        )  # fmt: skip
        with torch.no_grad():
            generated = model.generate(**enc, max_new_tokens=8, do_sample=False, num_beams=1, eos_token_id=eos_id)
        theirs += [_strip_pads(row[1:]) for row in generated.tolist()]
    assert [_strip_pads(t) for t in ours] == theirs
    assert len({tuple(t) for t in theirs}) >= 2
    assert not steps.misplaced


def _torch_label_probs(model, enc, label_ids: list[list[int]]) -> np.ndarray:
    import torch

    sums = []
    with torch.no_grad():
        for ids in label_ids:
            labels = torch.tensor([ids] * enc["input_ids"].shape[0], device=enc["input_ids"].device)
            logits = model(**enc, labels=labels).logits
            picked = torch.log_softmax(logits.double(), -1).gather(-1, labels[..., None])[..., 0]
            sums.append(picked.sum(-1))
    return torch.softmax(torch.stack(sums, dim=1), dim=1).cpu().numpy()


@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.parametrize("device", DEVICES)
def test_score_labels_on_torch_tensors_matches_pytorch_when_on_device(device: str, demo: str):
    tokenizer, model = _model(demo, device)
    steps = DeviceSteps(model, device)
    labels = list(shipped_spec(demo).labels) + ["not a label"]  # a multi-token candidate too
    label_ids = [tokenizer(label).input_ids for label in labels]
    texts = [e.text for e in builtin_emotion()][:24]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    enc = {k: v.to(device) for k, v in enc.items()}
    hidden = steps("encoder")(enc, ["last_hidden_state"])["last_hidden_state"]
    probs = score_labels(steps("decoder"), hidden, enc["attention_mask"], label_ids, start_id=0, pad_id=0)
    expected = _torch_label_probs(model, enc, label_ids)
    assert isinstance(probs, np.ndarray) and probs.shape == (len(texts), len(labels))
    assert float(np.abs(probs - expected).max()) < 1e-4
    assert len(set(probs.argmax(axis=1).tolist())) >= 2
    assert not steps.misplaced
