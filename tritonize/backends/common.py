"""Helpers shared by the Python-backend models (copied beside each ``model.py``).

Why here: every Python-backend step reads its config parameters the same way and answers a
bad request with an error response that names the problem, without failing the whole batch.
"""

from __future__ import annotations

import json
import os
from typing import Any

LABELS_FILE = "labels.txt"  # in the model directory; also the ensemble's label_filename


class RequestError(ValueError):
    """A request is invalid; it gets an error response, the other requests of the batch do not."""


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` map of the model's config, as plain strings."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def model_config(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(args["model_config"])


def error_response(pb_utils: Any, message: str) -> Any:
    """An InferenceResponse carrying an INVALID_ARG error (plain error on old backends)."""
    try:
        error = pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    except (AttributeError, TypeError):
        error = pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


def read_labels(model_dir: str) -> list[str]:
    """The generated ``labels.txt`` of a model directory, one label per line."""
    with open(os.path.join(model_dir, LABELS_FILE), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def split_rows(array: Any, sizes: list[int]) -> list[Any]:
    """Split a concatenated batch back into per-request arrays."""
    out, start = [], 0
    for size in sizes:
        out.append(array[start : start + size])
        start += size
    return out
