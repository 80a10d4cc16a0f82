"""Model step of the ``embedded`` target: an ONNX Runtime session inside the Python backend.

Why: the ``tritonserver`` bundled with nvidia-pytriton has only the Python backend, so the
``onnxruntime_onnx`` backend of the NGC container is replaced by this runner; everything else
in the ensemble is identical across targets. The Python backend hands ``execute()`` a list
of requests; this runner groups them by shape (the inputs are declared with
``allow_ragged_batch``, so Triton may queue different sequence buckets together) and runs
one session call per group: requests of one length bucket are computed as one batch, and
no request is padded further than its tokenizer bucket.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:
    from tritonize_backend_common import error_response, model_config, model_parameters, split_rows
except ImportError:
    from tritonize.backends.common import error_response, model_config, model_parameters, split_rows

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None

MODEL_FILE = "model.onnx"


def make_session(path: str, intra_op_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
    # No spin-waiting between ops: the runner shares the cores with the tokenizer, postprocess
    # and Triton itself, and spinning threads starve them (measured: +13% at concurrency 32).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def group_by_shape(feeds: list[dict[str, np.ndarray]]) -> dict[tuple, list[int]]:
    """Indices of requests whose inputs have equal non-batch shapes (they can be concatenated)."""
    groups: dict[tuple, list[int]] = {}
    for i, feed in enumerate(feeds):
        key = tuple((name, arr.shape[1:], arr.dtype.str) for name, arr in sorted(feed.items()))
        groups.setdefault(key, []).append(i)
    return groups


def run_grouped(
    session: Any, feeds: list[dict[str, np.ndarray]], wanted: list[list[str]]
) -> list[dict[str, np.ndarray]]:
    """Run every shape group as one batch and split the outputs back per request.

    ``wanted[i]`` are the outputs request ``i`` asked for; a group computes the union, so a
    BLS caller that needs only ``logits`` does not pay for copying the KV cache back.
    """
    results: list[dict[str, np.ndarray]] = [{} for _ in feeds]
    for indices in group_by_shape(feeds).values():
        names = list(feeds[indices[0]])
        batch = {n: np.concatenate([feeds[i][n] for i in indices], axis=0) for n in names}
        output_names = sorted({o for i in indices for o in wanted[i]})
        outputs = session.run(output_names, batch)
        sizes = [feeds[i][names[0]].shape[0] for i in indices]
        for name, value in zip(output_names, outputs):
            for i, part in zip(indices, split_rows(value, sizes)):
                if name in wanted[i]:
                    results[i][name] = part
    return results


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = model_config(args)
        params = model_parameters(args)
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.session = make_session(os.path.join(version_dir, MODEL_FILE), int(params.get("intra_op_num_threads", "0")))

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = [
            {n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names} for r in requests
        ]
        wanted = [list(r.requested_output_names()) or self.output_names for r in requests]
        try:
            results = run_grouped(self.session, feeds, wanted)
        except Exception as exc:  # noqa: BLE001 - an ORT failure becomes an error response per request
            return [error_response(pb_utils, f"ONNX Runtime failed: {exc}") for _ in requests]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, v) for n, v in out.items()])
            for out in results
        ]
