"""The decoding loop's array adapters and drivers on real ONNX Runtime steps (CPU).

The torch path (the GPU target's: step outputs arrive as torch tensors through DLPack) runs
here on CPU torch tensors over the same ORT graphs as the numpy path, so any difference comes
from the adapter, not from the steps. The async driver (what the BLS entry model awaits) is
checked against the sync one with several programs in flight at once.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from conftest_export import one_thread, tiny_t5, tiny_t5_export  # noqa: F401
from tokenizers import Tokenizer

from tritonize.backends.t5_decoding import (
    array_ops,
    gather_all,
    greedy_decode,
    greedy_decode_async,
    label_token_ids,
    score_labels,
    score_labels_async,
)
from tritonize.corpus import builtin_emotion
from tritonize.export.t5_validate import ort_runners

pytestmark = pytest.mark.usefixtures("one_thread")
DEMO = "flan-t5-small"
LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise", "not a label"]


class Steps:
    """ORT steps seen as numpy or torch step callables; records what each call received."""

    def __init__(self, as_torch: bool) -> None:
        self.runners = ort_runners(tiny_t5_export(DEMO))
        self.as_torch = as_torch
        self.calls: list[tuple[str, int, set[type]]] = []

    def __call__(self, component: str):
        def step(inputs: dict, outputs: list[str]) -> dict:
            self.calls.append((component, next(iter(inputs.values())).shape[0], {type(v) for v in inputs.values()}))
            feeds = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            out = {k: v for k, v in self.runners[component](feeds).items() if k in outputs}
            return {k: torch.from_numpy(v) for k, v in out.items()} if self.as_torch else out

        return step

    def async_(self, component: str):
        sync = self(component)

        async def step(inputs: dict, outputs: list[str]) -> dict:
            await asyncio.sleep(0)  # yield to the other programs, as an awaited BLS call does
            return sync(inputs, outputs)

        return step


def _batch(texts: list[str]) -> dict[str, np.ndarray]:
    tokenizer = Tokenizer.from_file(str(tiny_t5(DEMO) / "tokenizer.json"))
    encoded = tokenizer.encode_batch(texts, add_special_tokens=True)
    width = max(len(e.ids) for e in encoded)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _texts(start: int, count: int) -> list[str]:
    return [e.text for e in builtin_emotion()][start : start + count]


def _decode(steps: Steps, batch: dict, max_new_tokens: int, eos_id: int, to_torch: bool) -> list[list[int]]:
    exported = tiny_t5_export(DEMO)
    batch = {k: torch.from_numpy(v) for k, v in batch.items()} if to_torch else batch
    hidden = steps("encoder")(dict(batch), ["last_hidden_state"])["last_hidden_state"]
    mask = batch["attention_mask"]
    return greedy_decode(
        steps("decoder"), steps("decoder_with_past"), hidden, mask, max_new_tokens,
        eos_id, exported.decoder_start_token_id, exported.num_decoder_layers,
    )  # fmt: skip


@pytest.mark.parametrize("eos", ["eos", "never", "label"])
def test_greedy_decode_torch_path_is_token_exact_with_numpy_path_when_steps_are_ort(eos: str):
    batch = _batch(_texts(0, 24))
    eos_id = {"eos": 1, "never": 2}.get(eos)
    if eos_id is None:  # a label word as eos: rows that answer it stop at once, the others go on
        first = [row[0] for row in _decode(Steps(as_torch=False), batch, 1, 2, to_torch=False)]
        eos_id = max(set(first), key=first.count)
    numpy_steps, torch_steps = Steps(as_torch=False), Steps(as_torch=True)
    expected = _decode(numpy_steps, batch, 8, eos_id, to_torch=False)
    assert _decode(torch_steps, batch, 8, eos_id, to_torch=True) == expected
    assert len({tuple(t) for t in expected}) >= 2
    # every step input of the torch path was a torch tensor: nothing went back to numpy in the loop
    assert all(types == {torch.Tensor} for _, _, types in torch_steps.calls)
    assert [(c, rows) for c, rows, _ in torch_steps.calls] == [(c, rows) for c, rows, _ in numpy_steps.calls]
    if eos == "label":  # rows that finished left the batch: the row selection ran on both paths
        assert 0 < min(rows for c, rows, _ in torch_steps.calls if c == "decoder_with_past") < len(expected)


def test_score_labels_torch_path_matches_numpy_path_within_1e5():
    tokenizer = Tokenizer.from_file(str(tiny_t5(DEMO) / "tokenizer.json"))
    label_ids = label_token_ids(tokenizer, LABELS)
    batch = _batch(_texts(30, 16))
    results = {}
    for as_torch in (False, True):
        steps = Steps(as_torch=as_torch)
        feeds = {k: torch.from_numpy(v) for k, v in batch.items()} if as_torch else batch
        hidden = steps("encoder")(dict(feeds), ["last_hidden_state"])["last_hidden_state"]
        mask = feeds["attention_mask"]
        results[as_torch] = score_labels(steps("decoder"), hidden, mask, label_ids, start_id=0, pad_id=0)
        assert all(types == ({torch.Tensor} if as_torch else {np.ndarray}) for _, _, types in steps.calls)
    assert isinstance(results[True], np.ndarray) and results[True].shape == (16, len(LABELS))
    assert float(np.abs(results[True] - results[False]).max()) < 1e-5
    assert len(set(results[False].argmax(axis=1).tolist())) >= 2


def test_async_drivers_match_sync_when_programs_are_in_flight_together():
    exported = tiny_t5_export(DEMO)
    tokenizer = Tokenizer.from_file(str(tiny_t5(DEMO) / "tokenizer.json"))
    label_ids = label_token_ids(tokenizer, LABELS)
    batches = [_batch(_texts(0, 5)), _batch(_texts(40, 7))]
    sync_steps, async_steps = Steps(as_torch=False), Steps(as_torch=False)
    hidden = [sync_steps("encoder")(dict(b), ["last_hidden_state"])["last_hidden_state"] for b in batches]
    args = (exported.eos_token_id, exported.decoder_start_token_id, exported.num_decoder_layers)
    expected = [
        greedy_decode(sync_steps("decoder"), sync_steps("decoder_with_past"), h, b["attention_mask"], 6, *args)
        for h, b in zip(hidden, batches)
    ] + [score_labels(sync_steps("decoder"), h, b["attention_mask"], label_ids, 0, 0) for h, b in zip(hidden, batches)]

    async def together():
        decoder, past = async_steps.async_("decoder"), async_steps.async_("decoder_with_past")
        return await gather_all(
            *(greedy_decode_async(decoder, past, h, b["attention_mask"], 6, *args) for h, b in zip(hidden, batches)),
            *(score_labels_async(decoder, h, b["attention_mask"], label_ids, 0, 0) for h, b in zip(hidden, batches)),
        )

    got = asyncio.run(together())
    assert got[:2] == expected[:2]
    for a, b in zip(got[2:], expected[2:]):
        np.testing.assert_array_equal(a, b)
    # the programs interleaved: the first decoder calls of all four came before any decoder_with_past call
    order = [c for c, _, _ in async_steps.calls]
    assert order[:4] == ["decoder"] * 4 and sorted(order) == sorted(c for c, _, _ in sync_steps.calls[2:])


def test_greedy_decode_async_rejects_zero_new_tokens():
    hidden = np.zeros((1, 3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="max_new_tokens"):
        asyncio.run(greedy_decode_async(None, None, hidden, np.ones((1, 3), np.int64), 0, 1, 0, 1))


def test_gather_all_raises_first_failure_after_every_awaitable_finished():
    finished = []

    async def fails():
        raise RuntimeError("step failed")

    async def slow():
        await asyncio.sleep(0.01)
        finished.append(True)
        return 1

    with pytest.raises(RuntimeError, match="step failed"):
        asyncio.run(gather_all(fails(), slow()))
    assert finished == [True]


def test_array_ops_picks_adapter_by_array_kind_and_rejects_others():
    assert type(array_ops(np.zeros(2))).__name__ == "NumpyOps"
    ops = array_ops(torch.zeros(2))
    assert type(ops).__name__ == "TorchOps"
    keep = np.array([True, False, True])
    np.testing.assert_array_equal(ops.to_host(ops.select_rows(torch.arange(3), keep)), [0, 2])
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        array_ops([1, 2])


def test_step_memory_rejects_unknown_kind():
    from tritonize.backends.t5_generate import STEP_MEMORY, step_memory

    with pytest.raises(ValueError, match="step_memory must be one of"):
        step_memory("tpu", 0)
    assert set(STEP_MEMORY) == {"cpu", "gpu", "cpu-torch"}
