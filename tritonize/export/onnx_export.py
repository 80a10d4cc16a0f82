"""Export a Hugging Face sequence classifier to one ONNX graph.

Export only writes the file; :mod:`tritonize.export.validate` checks it separately on other
shapes. Tensor names, dtypes and dynamic axes come from :mod:`tritonize.export.tensors`.
The legacy TorchScript exporter (``dynamo=False``) is used: for DistilBERT it matches
PyTorch within 4e-7 and needs no extra dependencies at export time.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from tritonize.errors import ExportError
from tritonize.export.tensors import TRITON_TO_NUMPY, GraphDecl, sequence_classification_graph

logger = logging.getLogger(__name__)

OPSET = 17  # first opset with LayerNormalization as one op; supported by TensorRT 8.6+ and ORT 1.14+
DUMMY_BATCH = 2
DUMMY_SEQUENCE = 8  # validation uses other shapes, so a wrongly fixed axis is caught


def dummy_inputs(graph: GraphDecl, sizes: dict[str, int], vocab_size: int, seed: int = 0) -> dict[str, Any]:
    """Export-time example inputs for a graph's id/mask inputs; the mask pads the last row."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for decl in graph.inputs:
        shape = [sizes[a] if isinstance(a, str) else a for a in decl.axes]
        dtype = getattr(torch, TRITON_TO_NUMPY[decl.data_type])
        if decl.name.endswith("attention_mask"):
            mask = torch.ones(shape, dtype=dtype)
            mask[-1, shape[-1] // 2 :] = 0
            tensors[decl.name] = mask
        else:
            tensors[decl.name] = torch.randint(3, vocab_size, shape, generator=generator, dtype=dtype)
    return tensors


def torch_export(module: Any, args: tuple, graph: GraphDecl, out_path: Path, opset: int) -> None:
    """Run the legacy exporter with names and dynamic axes from ``graph``.

    Raises:
        ExportError: the exporter failed; the message carries the cause.
    """
    import torch

    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shape asserts baked as constants
            warnings.filterwarnings(
                "ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
            torch.onnx.export(
                module,
                args,
                str(out_path),
                input_names=[t.name for t in graph.inputs],
                output_names=[t.name for t in graph.outputs],
                dynamic_axes=graph.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; keep the cause
        raise ExportError(f"exporting {graph.component} to {out_path} failed: {type(exc).__name__}: {exc}") from exc
    annotate_outputs(out_path, graph)


def annotate_outputs(onnx_path: Path, graph: GraphDecl) -> None:
    """Write the declared output axes into the graph: the tracer names fixed sizes it cannot
    prove (e.g. the single new token of decoder_with_past) with generated symbols."""
    import onnx

    model = onnx.load(str(onnx_path))
    declared = {t.name: t.axes for t in graph.outputs}
    for output in model.graph.output:
        axes = declared.get(output.name)
        dims = output.type.tensor_type.shape.dim
        if axes is None or len(dims) != len(axes):
            continue  # validation reports the mismatch
        for dim, axis in zip(dims, axes):
            if isinstance(axis, int):
                dim.dim_value = axis
            else:
                dim.dim_param = axis
    onnx.save(model, str(onnx_path))


def _logits_module(model: Any) -> Any:
    import torch

    class LogitsOnly(torch.nn.Module):
        """Positional (input_ids, attention_mask) -> logits, as the graph declares."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(model).eval()


def load_classifier(checkpoint: str | Path) -> Any:
    """``AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()``.

    Raises:
        ExportError: the checkpoint cannot be loaded.
    """
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    except Exception as exc:  # OSError, ValueError, safetensors errors...
        raise ExportError(f"cannot load classifier checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from exc


def export_classifier(checkpoint: str | Path, out_path: Path, opset: int = OPSET) -> GraphDecl:
    """Export a sequence classifier (ids + mask -> logits) to ``out_path``; returns its declaration.

    Raises:
        ExportError: the checkpoint cannot be loaded or the export fails.
    """
    out_path = Path(out_path)
    model = load_classifier(checkpoint)
    graph = sequence_classification_graph(int(model.config.num_labels))
    sizes = {"batch": DUMMY_BATCH, "sequence": DUMMY_SEQUENCE}
    inputs = dummy_inputs(graph, sizes, int(model.config.vocab_size))
    torch_export(_logits_module(model), tuple(inputs[t.name] for t in graph.inputs), graph, out_path, opset)
    logger.info("exported %s -> %s (opset %d)", checkpoint, out_path, opset)
    return graph
