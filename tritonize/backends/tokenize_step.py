"""Tokenizer step: ``TEXT`` (BYTES) -> ``input_ids``, ``attention_mask`` (INT64), padded to buckets.

Why a Python model: the tokenizer must run next to the engine so clients send raw text.
All requests of one ``execute()`` are tokenized in one ``encode_batch`` call. Padding follows
the ``padding`` parameter:

* ``request`` (CPU targets): each request is padded to the smallest length bucket that fits
  its longest text. On CPU compute is proportional to padded tokens, so padding a short
  request to a long neighbour costs more than batching saves.
* ``joint`` (GPU target): all requests of the call are padded to one bucket, so they reach
  the engine with equal shapes and Triton's dynamic batcher merges them.

Texts longer than ``max_input_length`` tokens are truncated (as the HF pipeline does with
``truncation=True``); empty text, non-UTF-8 bytes and texts over ``max_text_bytes`` get an
error response naming the item, and the other requests of the batch are unaffected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # inside a generated repository the helpers sit beside this file
    from tritonize_backend_common import RequestError, error_response, model_parameters
except ImportError:  # imported from the installed package (tests)
    from tritonize.backends.common import RequestError, error_response, model_parameters

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # outside the server
    pb_utils = None

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class TokenizerSettings:
    max_input_length: int
    length_buckets: tuple[int, ...]
    pad_token_id: int
    padding: str = "request"
    max_text_bytes: int = 1 << 20

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> TokenizerSettings:
        return cls(
            max_input_length=int(params["max_input_length"]),
            length_buckets=tuple(int(b) for b in params["length_buckets"].split(",")),
            pad_token_id=int(params["pad_token_id"]),
            padding=params.get("padding", "request"),
            max_text_bytes=int(params.get("max_text_bytes", 1 << 20)),
        )

    def bucket_for(self, length: int) -> int:
        for bucket in self.length_buckets:
            if bucket >= length:
                return bucket
        return self.length_buckets[-1]


def decode_texts(raw: np.ndarray, max_text_bytes: int) -> list[str]:
    """BYTES tensor [batch, 1] -> list of str. Raises RequestError naming the bad item."""
    if raw.ndim != 2 or raw.shape[1] != 1:
        raise RequestError(f"TEXT must have shape [batch, 1], got {list(raw.shape)}")
    texts = []
    for i, item in enumerate(raw[:, 0]):
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        if len(data) > max_text_bytes:
            raise RequestError(f"TEXT item {i} has {len(data)} bytes, more than the limit of {max_text_bytes}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(f"TEXT item {i} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            raise RequestError(f"TEXT item {i} is empty or whitespace only")
        texts.append(text)
    return texts


def pad_batch(id_lists: list[list[int]], length: int, pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to ``length``: (input_ids, attention_mask), both int64."""
    ids = np.full((len(id_lists), length), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(id_lists), length), dtype=np.int64)
    for row, seq in enumerate(id_lists):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def tokenize_requests(tokenizer: Any, settings: TokenizerSettings, texts_per_request: list[list[str]]) -> list[tuple]:
    """Tokenize every request's texts in one call and pad per the settings' policy."""
    flat = [t for texts in texts_per_request for t in texts]
    encodings = tokenizer.encode_batch(flat, add_special_tokens=True)
    ids = [e.ids for e in encodings]
    per_request, start = [], 0
    for texts in texts_per_request:
        per_request.append(ids[start : start + len(texts)])
        start += len(texts)
    if settings.padding == "joint":
        joint = settings.bucket_for(max(len(s) for s in ids))
        return [pad_batch(r, joint, settings.pad_token_id) for r in per_request]
    return [pad_batch(r, settings.bucket_for(max(len(s) for s in r)), settings.pad_token_id) for r in per_request]


def load_tokenizer(directory: str, max_input_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(directory, TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_input_length)
    return tokenizer


class TritonPythonModel:
    """Triton entry point; the logic above is plain functions so tests can call it directly."""

    def initialize(self, args: dict[str, Any]) -> None:
        self.settings = TokenizerSettings.from_parameters(model_parameters(args))
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = load_tokenizer(version_dir, self.settings.max_input_length)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        valid, texts = [], []
        for i, request in enumerate(requests):
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
                texts.append(decode_texts(raw, self.settings.max_text_bytes))
                valid.append(i)
            except RequestError as exc:
                responses[i] = error_response(pb_utils, str(exc))
        if valid:
            for i, (ids, mask) in zip(valid, tokenize_requests(self.tokenizer, self.settings, texts)):
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("attention_mask", mask)]
                )
        return responses
