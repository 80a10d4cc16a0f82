"""The Python-backend step modules' logic, called directly (the server tests run them in Triton)."""

import numpy as np
import pytest

from tritonize.backends.common import RequestError, split_rows
from tritonize.backends.onnx_runner import group_by_shape
from tritonize.backends.postprocess_step import postprocess, softmax
from tritonize.backends.tokenize_step import TokenizerSettings, decode_texts, pad_batch, tokenize_requests


@pytest.fixture(scope="module")
def tokenizer():
    from tritonize.corpus import builtin_emotion
    from tritonize.demo.tokenizer_training import train_wordpiece

    fast = train_wordpiece([e.text for e in builtin_emotion()], vocab_size=600)
    tok = fast.backend_tokenizer
    tok.no_padding()
    tok.enable_truncation(max_length=32)
    return tok


def _settings(padding="request"):
    return TokenizerSettings(max_input_length=32, length_buckets=(8, 16, 32), pad_token_id=0, padding=padding)


def test_decode_texts_rejects_bad_items_naming_them():
    with pytest.raises(RequestError, match="item 1 is empty"):
        decode_texts(np.array([[b"ok"], [b"   "]], dtype=object), 100)
    with pytest.raises(RequestError, match="item 0 is not valid UTF-8"):
        decode_texts(np.array([[b"\xff\xfe"]], dtype=object), 100)
    with pytest.raises(RequestError, match="more than the limit"):
        decode_texts(np.array([[b"x" * 101]], dtype=object), 100)
    with pytest.raises(RequestError, match="shape"):
        decode_texts(np.array([b"a", b"b"], dtype=object), 100)
    assert decode_texts(np.array([["héllo".encode()]], dtype=object), 100) == ["héllo"]


def test_pad_batch_right_pads_with_mask():
    ids, mask = pad_batch([[5, 6, 7], [9]], 4, pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7, 0], [9, 0, 0, 0]] and mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert ids.dtype == np.int64 and mask.dtype == np.int64


def test_tokenize_requests_pads_each_request_to_its_own_bucket_when_request_padding(tokenizer):
    short, long_ = ["i am happy"], ["i am happy " * 5]
    (ids_a, _), (ids_b, mask_b) = tokenize_requests(tokenizer, _settings(), [short, long_])
    assert ids_a.shape[1] == 8 and ids_b.shape[1] in (16, 32)
    assert mask_b.sum() == len(tokenizer.encode(long_[0]).ids)


def test_tokenize_requests_pads_jointly_when_joint_padding(tokenizer):
    out = tokenize_requests(tokenizer, _settings("joint"), [["hi"], ["i am happy " * 5]])
    assert out[0][0].shape[1] == out[1][0].shape[1] >= 16


def test_tokenize_requests_truncates_to_max_input_length(tokenizer):
    ((ids, mask),) = tokenize_requests(tokenizer, _settings(), [["word " * 1000]])
    assert ids.shape == (1, 32) and mask.sum() == 32


def test_group_by_shape_groups_equal_sequence_lengths():
    feeds = [{"input_ids": np.zeros((n, length), np.int64)} for n, length in [(1, 16), (2, 32), (3, 16)]]
    assert sorted(group_by_shape(feeds).values()) == [[0, 2], [1]]


def test_split_rows_inverts_concatenation():
    parts = split_rows(np.arange(6), [1, 3, 2])
    assert [p.tolist() for p in parts] == [[0], [1, 2, 3], [4, 5]]


def test_postprocess_matches_softmax_and_argmax():
    logits = np.array([[1.0, 3.0, 0.0], [5.0, -1.0, 2.0]], dtype=np.float32)
    out = postprocess(logits, ["a", "b", "c"])
    assert out["LABEL"].reshape(-1).tolist() == [b"b", b"a"]
    np.testing.assert_allclose(out["PROBABILITIES"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out["SCORE"].reshape(-1), softmax(logits).max(axis=1))


def test_pad_ids_pads_to_longest_row_with_mask():
    from tritonize.backends.fused_classifier import pad_ids

    ids, mask = pad_ids([[5, 6, 7], [8], [9, 10]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]] and ids.dtype == mask.dtype == np.int64


def test_length_groups_sort_rows_by_length_when_cut_into_groups():
    from tritonize.backends.fused_classifier import length_groups

    groups = length_groups([5, 1, 4, 2, 3], max_rows=2, max_padding=1.0)
    assert [g.tolist() for g in groups] == [[1, 3], [4, 2], [0]]


def test_length_groups_start_new_group_when_padding_would_exceed_budget():
    from tritonize.backends.fused_classifier import length_groups

    lengths = [10, 10, 11, 40, 41, 10]
    groups = [g.tolist() for g in length_groups(lengths, max_rows=32, max_padding=0.25)]
    assert groups == [[0, 1, 5, 2], [3, 4]]
    padded = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    assert padded <= 1.25 * sum(lengths)
