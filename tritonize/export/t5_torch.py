"""T5 in PyTorch, cut into the three steps the ONNX graphs hold (encoder, decoder, decoder with past).

The export traces these modules, the validation runs them beside ONNX Runtime, and the decoding
loop's torch path uses them as its reference: one definition of what each step computes, with
the graphs' tensor names (:func:`tritonize.export.tensors.t5_graphs`). transformers 4.45-5.x
spell the cache argument differently; :func:`decode_with_cache` hides that.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# The step modules and cache helpers live with the PyTorch runtime's served step, which runs them
# in a Triton model directory without tritonize: defined there once, used here.
from tritonize.backends.torch_models import cache_from_flat, decode_with_cache, flat_cache, step_modules
from tritonize.errors import ExportError
from tritonize.export.tensors import GraphDecl, t5_graphs

__all__ = ["cache_from_flat", "decode_with_cache", "flat_cache", "load_seq2seq", "merge_self", "step_modules", "torch_runners"]


def load_seq2seq(checkpoint: str | Path, attn_implementation: str | None = None) -> Any:
    """``AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()``.

    Raises:
        ExportError: the checkpoint cannot be loaded.
    """
    from transformers import AutoModelForSeq2SeqLM

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        return AutoModelForSeq2SeqLM.from_pretrained(str(checkpoint), **kwargs).eval()
    except Exception as exc:  # OSError, ValueError, safetensors errors...
        raise ExportError(f"cannot load seq2seq checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from exc


def merge_self(flat: list[Any], new_self: list[Any]) -> list[Any]:
    """Flat (self k, self v, cross k, cross v) per layer with the self-attention part replaced."""
    merged = []
    for layer in range(len(flat) // 4):
        merged += [new_self[2 * layer], new_self[2 * layer + 1], flat[4 * layer + 2], flat[4 * layer + 3]]
    return merged


def torch_runners(model: Any) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """PyTorch callables per component: dict of torch inputs -> dict of named torch outputs.

    The modules are the ones :func:`export_t5` traces, run eagerly on the model's device with
    the graphs' tensor names: the reference for the decoding loop's torch path (the GPU
    target keeps step outputs as torch tensors) on machines without Triton or ONNX Runtime.
    """
    import torch

    graphs = t5_graphs(model.config)

    def runner(module: Any, decl: GraphDecl) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def run(feeds: dict[str, Any]) -> dict[str, Any]:
            with torch.no_grad():
                out = module(*(feeds[t.name] for t in decl.inputs))
            return dict(zip((t.name for t in decl.outputs), out if isinstance(out, tuple) else (out,)))

        return run

    return {component: runner(module, graphs[component]) for component, module in step_modules(model).items()}
