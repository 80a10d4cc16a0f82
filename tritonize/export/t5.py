"""T5 export as three ONNX graphs (Optimum's split).

* ``encoder_model.onnx``: input_ids, attention_mask -> last_hidden_state
* ``decoder_model.onnx``: first step (or teacher-forced label scoring); computes every
  layer's self- and cross-attention keys/values
* ``decoder_with_past_model.onnx``: one new token with the cached keys/values

No merged decoder with an ONNX ``If``: TensorRT and Triton handle plain graphs better, and the
BLS model picks the graph per step. Tensor names and axes come from
:func:`tritonize.export.tensors.t5_graphs`; sizes from the HF config, never from literals.
Graphs are exported in FP32 (T5 beyond small overflows in FP16; engines choose precision).
The PyTorch steps live in :mod:`~tritonize.export.t5_torch`, the validation and ONNX Runtime
runners in :mod:`~tritonize.export.t5_validate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.export.onnx_export import OPSET, dummy_inputs, torch_export
from tritonize.export.t5_torch import load_seq2seq, step_modules
from tritonize.export.tensors import (
    DECODER_SEQUENCE,
    ENCODER_SEQUENCE,
    PAST_DECODER_SEQUENCE,
    T5_DECODER,
    T5_DECODER_WITH_PAST,
    T5_ENCODER,
    GraphDecl,
    normalized,
    t5_graphs,
)

logger = logging.getLogger(__name__)

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
T5_FILES = {T5_ENCODER: ENCODER_FILE, T5_DECODER: DECODER_FILE, T5_DECODER_WITH_PAST: DECODER_WITH_PAST_FILE}
# Export-time shapes; validation runs other batch sizes and lengths.
DUMMY_SIZES = {"batch": 2, ENCODER_SEQUENCE: 7, DECODER_SEQUENCE: 3, PAST_DECODER_SEQUENCE: 3}


@dataclass(frozen=True, kw_only=True)
class T5Export:
    """What :func:`export_t5` wrote: graph declarations and files per component, and the
    token ids and depth the decoding loop needs (read from the checkpoint's config)."""

    out_dir: Path
    graphs: dict[str, GraphDecl]
    paths: dict[str, Path]
    pad_token_id: int
    eos_token_id: int
    decoder_start_token_id: int
    num_decoder_layers: int


def _dummy_feeds(model: Any, graphs: dict[str, GraphDecl]) -> dict[str, tuple]:
    """Export-time inputs per graph; the past comes from a real first step, so it is consistent."""
    import torch

    config = model.config
    vocab = normalized(config, "vocab_size")
    enc = dummy_inputs(graphs[T5_ENCODER], DUMMY_SIZES, vocab)
    with torch.no_grad():
        hidden = model.encoder(**enc).last_hidden_state
        dec_ids = dummy_inputs(graphs[T5_DECODER], DUMMY_SIZES, vocab, seed=1)["input_ids"]
        first = step_modules(model)[T5_DECODER](dec_ids, enc["attention_mask"], hidden)
    next_ids = dummy_inputs(graphs[T5_DECODER_WITH_PAST], DUMMY_SIZES, vocab, seed=2)["input_ids"]
    return {
        T5_ENCODER: (enc["input_ids"], enc["attention_mask"]),
        T5_DECODER: (dec_ids, enc["attention_mask"], hidden),
        T5_DECODER_WITH_PAST: (next_ids, enc["attention_mask"], *first[1:]),
    }


def export_t5(checkpoint: str | Path, out_dir: Path, opset: int = OPSET) -> T5Export:
    """Export the three T5 graphs into ``out_dir`` (file names :data:`T5_FILES`).

    Raises:
        ExportError: the checkpoint cannot be loaded or an export fails.
    """
    out_dir = Path(out_dir)
    # Eager attention traces to plain MatMul/Softmax with T5's additive position bias.
    model = load_seq2seq(checkpoint, attn_implementation="eager")
    graphs = t5_graphs(model.config)
    feeds = _dummy_feeds(model, graphs)
    for component, module in step_modules(model).items():
        torch_export(module, feeds[component], graphs[component], out_dir / T5_FILES[component], opset)
    logger.info("exported %s -> %s (%s)", checkpoint, out_dir, ", ".join(T5_FILES.values()))
    config = model.config
    return T5Export(
        out_dir=out_dir,
        graphs=graphs,
        paths={component: out_dir / file_name for component, file_name in T5_FILES.items()},
        pad_token_id=int(config.pad_token_id),
        eos_token_id=int(config.eos_token_id),
        decoder_start_token_id=int(config.decoder_start_token_id),
        num_decoder_layers=normalized(config, "num_decoder_layers"),
    )


_MOVED = {
    "decode_with_cache": "tritonize.export.t5_torch",
    "torch_runners": "tritonize.export.t5_torch",
    "ort_runners": "tritonize.export.t5_validate",
    "validate_t5": "tritonize.export.t5_validate",
}


def __getattr__(name: str) -> Any:
    """The names that moved out of this module still import from here, with a warning."""
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"tritonize.export.t5.{name} moved to {_MOVED[name]}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
