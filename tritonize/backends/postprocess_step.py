"""Postprocess step: ``logits`` -> ``LABEL``, ``SCORE``, ``PROBABILITIES``.

Why a separate step: the engine stays a pure graph (the same ONNX for ORT and TensorRT),
and the label names live in one generated file, ``labels.txt``, which is also the ensemble
output's ``label_filename`` for Triton's classification extension. The softmax matches the
Hugging Face text-classification pipeline's (``function_to_apply="softmax"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from tritonize_backend_common import read_labels
except ImportError:
    from tritonize.backends.common import read_labels

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None

def softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def postprocess(logits: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    probs = softmax(logits)
    best = probs.argmax(axis=-1)
    names = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
    return {
        "LABEL": names[best].reshape(-1, 1),
        "SCORE": probs[np.arange(len(best)), best].reshape(-1, 1).astype(np.float32),
        "PROBABILITIES": probs,
    }


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.labels = read_labels(args["model_repository"])

    def execute(self, requests: list[Any]) -> list[Any]:
        # One softmax over the whole list: concatenate, compute, split.
        logits = [pb_utils.get_input_tensor_by_name(r, "logits").as_numpy() for r in requests]
        out = postprocess(np.concatenate(logits, axis=0), self.labels)
        responses, start = [], 0
        for part in logits:
            end = start + part.shape[0]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(k, v[start:end]) for k, v in out.items()]
                )
            )
            start = end
        return responses
