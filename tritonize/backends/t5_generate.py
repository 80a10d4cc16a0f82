"""Entry model of a T5 deployment: a BLS loop that tokenizes, encodes, decodes greedily, scores labels.

Why BLS: generation is a data-dependent loop, which an ensemble cannot express. The engine
steps (encoder, decoder, decoder-with-past) are separate Triton models with dynamic
batching, so the calls of several requests and instances are merged there.

Per ``execute()``: all requests are tokenized in one ``encode_batch``; requests are grouped by
length bucket (CPU cost follows padded tokens); per group one encoder call, then either greedy
decoding with the KV cache (``GENERATED_TEXT``, ``OUTPUT_IDS``) or label scoring (``LABEL``,
``SCORE``, ``PROBABILITIES``), or both, as the requests asked. Greedy rows are independent,
so a group decodes to its largest ``max_new_tokens`` and each row is cut at its own.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:
    from tritonize_backend_common import LABELS_FILE, RequestError, error_response, model_parameters, read_labels
    from tritonize_backend_t5_decoding import greedy_decode, label_token_ids, score_labels
    from tritonize_backend_tokenize_step import TokenizerSettings, decode_texts, load_tokenizer, pad_batch
except ImportError:
    from tritonize.backends.common import LABELS_FILE, RequestError, error_response, model_parameters, read_labels
    from tritonize.backends.t5_decoding import greedy_decode, label_token_ids, score_labels
    from tritonize.backends.tokenize_step import TokenizerSettings, decode_texts, load_tokenizer, pad_batch

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None

GENERATION_OUTPUTS = ("GENERATED_TEXT", "OUTPUT_IDS")
SCORING_OUTPUTS = ("LABEL", "SCORE", "PROBABILITIES")


def parse_max_new_tokens(value: np.ndarray | None, rows: int, default: int, limit: int) -> list[int]:
    """Per-row max_new_tokens from the optional INT32 [batch, 1] input. Raises RequestError."""
    if value is None:
        return [default] * rows
    flat = value.reshape(-1)
    if flat.shape[0] != rows:
        raise RequestError(f"max_new_tokens must have one value per TEXT row ({rows}), got {flat.shape[0]}")
    bad = [int(v) for v in flat if not 1 <= int(v) <= limit]
    if bad:
        raise RequestError(f"max_new_tokens must be in 1..{limit}, got {bad[0]}")
    return [int(v) for v in flat]


class StepCaller:
    """Calls an engine step through BLS, chunked to the step's max_batch_size."""

    def __init__(self, model_name: str, max_batch_size: int) -> None:
        self.model_name = model_name
        self.max_batch_size = max_batch_size

    def __call__(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, self.max_batch_size):
            chunk = {k: v[start : start + self.max_batch_size] for k, v in inputs.items()}
            request = pb_utils.InferenceRequest(
                model_name=self.model_name,
                inputs=[pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in chunk.items()],
                requested_output_names=outputs,
            )
            response = request.exec()
            if response.has_error():
                raise RuntimeError(f"{self.model_name}: {response.error().message()}")
            parts.append({n: pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in outputs})
        if len(parts) == 1:
            return parts[0]
        return {n: np.concatenate([p[n] for p in parts], axis=0) for n in outputs}


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.settings = TokenizerSettings.from_parameters(params)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = load_tokenizer(version_dir, self.settings.max_input_length)
        self.default_new_tokens = int(params["max_new_tokens"])
        self.limit_new_tokens = int(params["max_new_tokens_limit"])
        self.eos_id = int(params["eos_token_id"])
        self.start_id = int(params["decoder_start_token_id"])
        self.num_layers = int(params["num_decoder_layers"])
        step_batch = int(params["step_max_batch_size"])
        self.encoder = StepCaller(params["encoder_model"], step_batch)
        self.decoder = StepCaller(params["decoder_model"], step_batch)
        self.decoder_with_past = StepCaller(params["decoder_with_past_model"], step_batch)
        has_labels = os.path.exists(os.path.join(args["model_repository"], LABELS_FILE))
        self.labels = read_labels(args["model_repository"]) if has_labels else []
        self.label_ids = label_token_ids(self.tokenizer, self.labels) if self.labels else []

    def _parse(self, request: Any) -> tuple[list[str], list[int], set[str]]:
        text = pb_utils.get_input_tensor_by_name(request, "TEXT")
        if text is None:  # Triton 2.51 checks only the input count when a model has optional inputs
            raise RequestError("input TEXT is required")
        texts = decode_texts(text.as_numpy(), self.settings.max_text_bytes)
        tensor = pb_utils.get_input_tensor_by_name(request, "max_new_tokens")
        limits = parse_max_new_tokens(
            None if tensor is None else tensor.as_numpy(), len(texts), self.default_new_tokens, self.limit_new_tokens
        )
        wanted = set(request.requested_output_names()) or set(GENERATION_OUTPUTS + SCORING_OUTPUTS)
        if wanted & set(SCORING_OUTPUTS) and not self.labels:
            raise RequestError("this deployment has no labels: LABEL, SCORE and PROBABILITIES are unavailable")
        return texts, limits, wanted

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, tuple[list[str], list[int], set[str]]] = {}
        for i, request in enumerate(requests):
            try:
                parsed[i] = self._parse(request)
            except RequestError as exc:
                responses[i] = error_response(pb_utils, str(exc))
        if parsed:
            self._run(parsed, responses)
        return responses

    def _run(self, parsed: dict[int, tuple[list[str], list[int], set[str]]], responses: list[Any]) -> None:
        order = list(parsed)
        flat = [t for i in order for t in parsed[i][0]]
        ids = [e.ids for e in self.tokenizer.encode_batch(flat, add_special_tokens=True)]
        rows: list[tuple[int, int]] = [(i, j) for i in order for j in range(len(parsed[i][0]))]
        groups: dict[int, list[int]] = {}
        for k, seq in enumerate(ids):
            groups.setdefault(self.settings.bucket_for(len(seq)), []).append(k)
        results: dict[tuple[int, int], dict[str, Any]] = {}
        try:
            for bucket, members in groups.items():
                self._run_group(bucket, [ids[k] for k in members], [rows[k] for k in members], parsed, results)
        except Exception as exc:  # noqa: BLE001 - a step failure answers every request of the call
            for i in order:
                responses[i] = error_response(pb_utils, f"generation failed: {exc}")
            return
        for i in order:
            n = len(parsed[i][0])
            responses[i] = self._response([results[(i, j)] for j in range(n)], parsed[i][2])

    def _run_group(self, bucket, id_lists, rows, parsed, results) -> None:
        input_ids, mask = pad_batch(id_lists, bucket, self.settings.pad_token_id)
        hidden = self.encoder({"input_ids": input_ids, "attention_mask": mask}, ["last_hidden_state"])["last_hidden_state"]
        wanted = set().union(*(parsed[i][2] for i, _ in rows))
        for r in rows:
            results[r] = {}
        if wanted & set(GENERATION_OUTPUTS):
            limits = [parsed[i][1][j] for i, j in rows]
            tokens = greedy_decode(
                self.decoder, self.decoder_with_past, hidden, mask, max(limits), self.eos_id, self.start_id, self.num_layers
            )
            for r, seq, limit in zip(rows, tokens, limits):
                results[r]["ids"] = seq[:limit]
        if wanted & set(SCORING_OUTPUTS):
            probs = score_labels(self.decoder, hidden, mask, self.label_ids, self.start_id, self.settings.pad_token_id)
            for r, p in zip(rows, probs):
                results[r]["probs"] = p

    def _response(self, items: list[dict[str, Any]], wanted: set[str]) -> Any:
        tensors = []
        if "GENERATED_TEXT" in wanted:
            texts = [self.tokenizer.decode(it["ids"], skip_special_tokens=True).encode("utf-8") for it in items]
            tensors.append(pb_utils.Tensor("GENERATED_TEXT", np.array(texts, dtype=np.object_).reshape(-1, 1)))
        if "OUTPUT_IDS" in wanted:
            width = max(1, max(len(it["ids"]) for it in items))
            out = np.full((len(items), width), self.settings.pad_token_id, dtype=np.int64)
            for row, it in enumerate(items):
                out[row, : len(it["ids"])] = it["ids"]
            tensors.append(pb_utils.Tensor("OUTPUT_IDS", out))
        if wanted & set(SCORING_OUTPUTS):
            probs = np.stack([it["probs"] for it in items]).astype(np.float32)
            best = probs.argmax(axis=1)
            labels = np.array([[self.labels[b].encode("utf-8")] for b in best], dtype=np.object_)
            score = probs[np.arange(len(best)), best].reshape(-1, 1)
            for name, value in (("LABEL", labels), ("SCORE", score), ("PROBABILITIES", probs)):
                if name in wanted:
                    tensors.append(pb_utils.Tensor(name, value))
        return pb_utils.InferenceResponse(output_tensors=tensors)
