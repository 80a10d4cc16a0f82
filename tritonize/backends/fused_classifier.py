"""Fused classifier step of the ``embedded`` target: tokenize -> ONNX Runtime -> softmax in one model.

Why: in the three-step ensemble every step is its own Python-backend stub, so one request
crosses the server/stub shared-memory boundary three times, and BYTES and INT64 tensors are
copied at each crossing. On the tiny demo (the engine nearly free, like a fast GPU engine)
that per-step overhead, not the model, bounded throughput; on the full-size CPU model the
separate runner also had to pad every request to its tokenizer bucket. This step does all
three in one ``execute()`` and batches the way raw ONNX Runtime is fastest on CPU: every text
of every queued request is tokenized in one ``encode_batch``, the texts are sorted by length,
cut into groups of at most ``engine_batch`` rows padded only to the group's longest text, and
each group is one session call. Results go back to their requests in the original order.

Only the embedded target fuses: the ``cpu`` and ``gpu`` targets keep the separate engine step
(onnxruntime / TensorRT backends), and the deployment contract (the ensemble's ``TEXT`` ->
``LABEL`` / ``SCORE`` / ``PROBABILITIES`` with ``label_filename``) is the same either way.

The ``runtime`` parameter picks the model: ``onnxruntime`` (the ONNX graph, as above) or a
PyTorch runtime (``torch-cuda`` / ``torch-cpu``: the checkpoint in PyTorch on the instance's
device, length groups padded to the buckets CUDA graphs were captured for; see
:mod:`tritonize.backends.torch_models`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # inside a generated repository the helpers sit beside this file
    from tritonize_backend_common import RequestError, error_response, model_parameters, read_labels
    from tritonize_backend_onnx_runner import MODEL_FILE, make_session
    from tritonize_backend_postprocess_step import postprocess
    from tritonize_backend_tokenize_step import TokenizerSettings, decode_texts, load_tokenizer
except ImportError:  # imported from the installed package (tests, bench)
    from tritonize.backends.common import RequestError, error_response, model_parameters, read_labels
    from tritonize.backends.onnx_runner import MODEL_FILE, make_session
    from tritonize.backends.postprocess_step import postprocess
    from tritonize.backends.tokenize_step import TokenizerSettings, decode_texts, load_tokenizer

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # outside the server
    pb_utils = None

OUTPUTS = ("LABEL", "SCORE", "PROBABILITIES")


def pad_ids(id_lists: list[list[int]], pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest list, without a Python loop per row: (input_ids, attention_mask)."""
    lengths = np.fromiter((len(ids) for ids in id_lists), dtype=np.int64, count=len(id_lists))
    mask = (np.arange(int(lengths.max())) < lengths[:, None]).astype(np.int64)
    ids = np.full(mask.shape, pad_token_id, dtype=np.int64)
    ids[mask.astype(bool)] = np.fromiter((t for row in id_lists for t in row), dtype=np.int64, count=int(lengths.sum()))
    return ids, mask


MAX_PADDING = 0.25  # a group's padded tokens may exceed its real tokens by this fraction


def length_groups(lengths: list[int], max_rows: int, max_padding: float = MAX_PADDING) -> list[np.ndarray]:
    """Row indices sorted by length, cut into groups of at most ``max_rows`` whose padding (to the
    group's longest row) adds at most ``max_padding`` of their real tokens.

    CPU cost follows padded tokens: measured on the full-size model, batches of 8 in arrival
    order ran slower than one text at a time, sorted ones 1.5x faster.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    groups: list[list[int]] = []
    real = 0
    for index in order.tolist():
        length = lengths[index]  # ascending: the newest row is the group's longest
        group = groups[-1] if groups else None
        if group is None or len(group) >= max_rows or length * (len(group) + 1) > (1 + max_padding) * (real + length):
            groups.append([index])
            real = length
        else:
            group.append(index)
            real += length
    return [np.asarray(group, dtype=np.int64) for group in groups]


def run_logits(session: Any, id_lists: list[list[int]], pad_token_id: int, max_rows: int) -> np.ndarray:
    """Logits of every row, computed in length-sorted groups, returned in input order."""
    parts: list[np.ndarray] = []
    groups = length_groups([len(ids) for ids in id_lists], max_rows)
    for group in groups:
        input_ids, mask = pad_ids([id_lists[i] for i in group], pad_token_id)
        parts.append(session.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})[0])
    logits = np.empty((len(id_lists), parts[0].shape[1]), dtype=parts[0].dtype)
    for group, part in zip(groups, parts):
        logits[group] = part
    return logits


Logits = Callable[[list[list[int]]], np.ndarray]  # token id lists -> float32 [rows, labels]


def classify(tokenizer: Any, logits: Logits, labels: list[str], texts: list[str]) -> dict[str, np.ndarray]:
    """``LABEL``, ``SCORE``, ``PROBABILITIES`` of ``texts`` (the whole fused step, minus Triton)."""
    id_lists = [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=True)]
    return postprocess(logits(id_lists), labels)


def classify_texts(
    tokenizer: Any, session: Any, settings: TokenizerSettings, labels: list[str], texts: list[str], max_rows: int
) -> dict[str, np.ndarray]:
    """:func:`classify` with an ONNX Runtime session."""
    return classify(tokenizer, lambda ids: run_logits(session, ids, settings.pad_token_id, max_rows), labels, texts)


ONNXRUNTIME = "onnxruntime"
RUNTIME_NAMES = {ONNXRUNTIME: "ONNX Runtime", "torch-cuda": "PyTorch (CUDA)", "torch-cpu": "PyTorch (CPU)"}


def runtime_logits(args: dict[str, Any], params: dict[str, str], version_dir: str, settings: TokenizerSettings) -> Logits:
    """The logits function of this instance's runtime (config parameter ``runtime``).

    Raises RuntimeUnavailable (torch runtimes) when the instance's device cannot run the plan:
    Triton then reports the one-line message as the model's load error.
    """
    engine_batch = int(params.get("engine_batch", "32"))
    threads = int(params.get("intra_op_num_threads", "0"))
    if params.get("runtime", ONNXRUNTIME) == ONNXRUNTIME:
        session = make_session(os.path.join(version_dir, MODEL_FILE), threads)
        return lambda ids: run_logits(session, ids, settings.pad_token_id, engine_batch)
    try:
        from tritonize_backend_torch_models import instance_device, load_classifier, parse_plans, set_threads
    except ImportError:
        from tritonize.backends.torch_models import instance_device, load_classifier, parse_plans, set_threads
    device = instance_device(params["device"], args)
    set_threads(threads, device)
    classifier = load_classifier(
        version_dir,
        params["torch_model_class"],
        device,
        parse_plans(params["torch_plans"]),
        pad_token_id=settings.pad_token_id,
        length_buckets=settings.length_buckets,
        max_rows=engine_batch,
        cuda_graphs=params.get("cuda_graphs") == "true",
    )
    return classifier.logits


class TritonPythonModel:
    """Triton entry point; the logic above is plain functions so tests can call it directly."""

    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.settings = TokenizerSettings.from_parameters(params)
        self.runtime = params.get("runtime", ONNXRUNTIME)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = load_tokenizer(version_dir, self.settings.max_input_length)
        self.logits = runtime_logits(args, params, version_dir, self.settings)
        self.labels = read_labels(args["model_repository"])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        valid: list[int] = []
        texts: list[str] = []
        sizes: list[int] = []
        for i, request in enumerate(requests):
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
                items = decode_texts(raw, self.settings.max_text_bytes)
            except RequestError as exc:
                responses[i] = error_response(pb_utils, str(exc))
                continue
            valid.append(i)
            texts += items
            sizes.append(len(items))
        if not valid:
            return responses
        try:
            out = classify(self.tokenizer, self.logits, self.labels, texts)
        except Exception as exc:  # noqa: BLE001 - a model failure becomes an error response per request
            for i in valid:
                responses[i] = error_response(pb_utils, f"{RUNTIME_NAMES.get(self.runtime, self.runtime)} failed: {exc}")
            return responses
        start = 0
        for i, size in zip(valid, sizes):
            wanted = set(requests[i].requested_output_names()) or set(OUTPUTS)
            tensors = [pb_utils.Tensor(name, out[name][start : start + size]) for name in OUTPUTS if name in wanted]
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
            start += size
        return responses
