"""Validate exported ONNX graphs against PyTorch on real inputs.

Validation runs on shapes different from the export's dummy inputs (batches padded to their
longest text, and batch 1 unpadded), checks tensor names, dtypes, dynamic axes, output shapes
and values, collects *every* failure and raises one :class:`ValidationError`. The tolerance
comes from the spec; there is no per-architecture special case here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tritonize.errors import ValidationError
from tritonize.export.tensors import TRITON_TO_NUMPY, GraphDecl, TensorDecl, sequence_classification_graph

logger = logging.getLogger(__name__)

VALIDATION_BATCH = 4  # differs from the export's dummy batch
SINGLE_TEXTS = 8  # texts also run one by one, unpadded
_ORT_TYPES = {
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "bool": "tensor(bool)",
}


def open_session(onnx_path: Path, failures: list[str]) -> Any:
    """A CPU ONNX Runtime session, or ``None`` with the reason appended to ``failures``."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, NoSuchFile...)
        failures.append(f"{Path(onnx_path).name}: cannot load in ONNX Runtime: {exc}")
        return None


def _check_args(where: str, declared: Sequence[TensorDecl], actual: Sequence[Any], failures: list[str]) -> None:
    names = [t.name for t in declared]
    got = [a.name for a in actual]
    if got != names:
        failures.append(f"{where}: names {got} != declared {names}")
        return
    for decl, arg in zip(declared, actual):
        dtype = _ORT_TYPES.get(TRITON_TO_NUMPY[decl.data_type])
        if arg.type != dtype:
            failures.append(f"{where} '{decl.name}': dtype {arg.type} != declared {dtype}")
        if len(arg.shape) != len(decl.axes):
            failures.append(f"{where} '{decl.name}': rank {len(arg.shape)} != declared {len(decl.axes)}")
            continue
        for i, (axis, dim) in enumerate(zip(decl.axes, arg.shape)):
            if isinstance(axis, str) and isinstance(dim, int):
                failures.append(f"{where} '{decl.name}': axis {i} ({axis}) is fixed to {dim}, declared dynamic")
            elif isinstance(axis, int) and dim != axis:
                failures.append(f"{where} '{decl.name}': axis {i} is {dim}, declared {axis}")


def check_signature(session: Any, graph: GraphDecl, graph_name: str, failures: list[str]) -> None:
    """Compare the session's inputs and outputs (names, dtypes, axes) with the declaration."""
    _check_args(f"{graph_name} inputs", graph.inputs, session.get_inputs(), failures)
    _check_args(f"{graph_name} outputs", graph.outputs, session.get_outputs(), failures)


def compare(
    where: str,
    expected: Any,
    actual: Any,
    tolerance: float | None,
    failures: list[str],
    names: tuple[str, str] = ("ONNX", "PyTorch"),
) -> float:
    """Max |actual - expected|; appends a failure on shape mismatch, NaN or diff > tolerance.

    ``tolerance`` None only measures (a gate decides elsewhere); ``names`` name the two sides.
    """
    import numpy as np

    candidate, reference = names
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        failures.append(f"{where}: shape {list(actual.shape)} != {reference} {list(expected.shape)}")
        return float("inf")
    if not np.all(np.isfinite(actual)):
        failures.append(f"{where}: {candidate} output holds NaN or Inf")
        return float("inf")
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    if tolerance is not None and diff > tolerance:
        failures.append(f"{where}: max |{candidate} - {reference}| = {diff:.3g} > tolerance {tolerance:g}")
    return diff


def input_batches(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, Any]]:
    """Numpy int64 batches: groups of :data:`VALIDATION_BATCH` padded to their longest, then singles."""
    import numpy as np

    def encode(group: Sequence[str], padding: bool) -> dict[str, Any]:
        enc = tokenizer(
            list(group),
            padding="longest" if padding else False,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        return {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}

    texts = list(texts)
    groups = [encode(texts[i : i + VALIDATION_BATCH], True) for i in range(0, len(texts), VALIDATION_BATCH)]
    return groups + [encode([t], False) for t in texts[:SINGLE_TEXTS]]


def max_input_length(tokenizer: Any, config: Any) -> int:
    """The longest input the model takes: tokenizer limit capped by the position table."""
    limit = int(getattr(tokenizer, "model_max_length", 512) or 512)
    positions = getattr(config, "max_position_embeddings", None)
    return min(limit, int(positions)) if positions else min(limit, 512)


def validate_classifier(
    checkpoint: str | Path, onnx_path: Path, texts: Sequence[str], tolerance: float, name: str | None = None
) -> dict[str, Any]:
    """Run PyTorch and ONNX Runtime on ``texts`` and compare logits.

    Returns ``{"max_abs_diff", "num_texts", "num_batches", "tolerance", "graph"}``.

    Raises:
        ValidationError: listing every mismatch (names, dtypes, axes, shapes, values).
        ExportError: the checkpoint cannot be loaded.
    """
    import torch
    from transformers import AutoTokenizer

    from tritonize.export.onnx_export import load_classifier

    onnx_path = Path(onnx_path)
    failures: list[str] = []
    if not texts:
        raise ValidationError(name or str(checkpoint), ["no texts to validate with"])
    model = load_classifier(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    graph = sequence_classification_graph(int(model.config.num_labels))
    session = open_session(onnx_path, failures)
    max_diff = 0.0
    batches = input_batches(tokenizer, texts, max_input_length(tokenizer, model.config))
    if session is not None:
        check_signature(session, graph, onnx_path.name, failures)
        for i, batch in enumerate(batches):
            with torch.no_grad():
                expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
            try:
                (actual,) = session.run(["logits"], batch)
            except Exception as exc:  # ORT errors on a shape the graph cannot take
                failures.append(f"{onnx_path.name} batch {i} shape {list(batch['input_ids'].shape)}: run failed: {exc}")
                break  # later batches would only repeat it
            where = f"{onnx_path.name} batch {i} shape {list(batch['input_ids'].shape)} logits"
            max_diff = max(max_diff, compare(where, expected, actual, tolerance, failures))
    if failures:
        raise ValidationError(name or str(checkpoint), failures)
    report = {
        "max_abs_diff": max_diff,
        "num_texts": len(texts),
        "num_batches": len(batches),
        "tolerance": tolerance,
        "graph": onnx_path.name,
    }
    logger.info("validated %s: max |diff| %.3g over %d texts", onnx_path, max_diff, len(texts))
    return report
