"""T5 in PyTorch, cut into the three steps the ONNX graphs hold (encoder, decoder, decoder with past).

The export traces these modules, the validation runs them beside ONNX Runtime, and the decoding
loop's torch path uses them as its reference: one definition of what each step computes, with
the graphs' tensor names (:func:`tritonize.export.tensors.t5_graphs`). transformers 4.45-5.x
spell the cache argument differently; :func:`decode_with_cache` hides that.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tritonize.errors import ExportError
from tritonize.export.tensors import T5_DECODER, T5_DECODER_WITH_PAST, T5_ENCODER, GraphDecl, t5_graphs


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


def cache_from_flat(past: Sequence[Any]) -> Any:
    """EncoderDecoderCache from flat per-layer (self key, self value, cross key, cross value)."""
    from transformers.cache_utils import EncoderDecoderCache

    return EncoderDecoderCache([tuple(past[i : i + 4]) for i in range(0, len(past), 4)])


def flat_cache(cache: Any, with_cross: bool) -> list[Any]:
    """Per layer: self key, self value[, cross key, cross value] (the declared output order)."""
    flat = []
    for layer, self_layer in enumerate(cache.self_attention_cache.layers):
        flat += [self_layer.keys, self_layer.values]
        if with_cross:
            cross = cache.cross_attention_cache.layers[layer]
            flat += [cross.keys, cross.values]
    return flat


def merge_self(flat: list[Any], new_self: list[Any]) -> list[Any]:
    """Flat (self k, self v, cross k, cross v) per layer with the self-attention part replaced."""
    merged = []
    for layer in range(len(flat) // 4):
        merged += [new_self[2 * layer], new_self[2 * layer + 1], flat[4 * layer + 2], flat[4 * layer + 3]]
    return merged


def decode_with_cache(model: Any, cache: Any, **inputs: Any) -> tuple[Any, Any]:
    """``model(**inputs)`` with a KV cache; returns (logits, the updated cache).

    transformers renamed the argument and output ``past_key_values`` to ``cache`` in 5.2x; both
    spellings are accepted so the same export runs where an older 5.x is installed (a GPU image).
    """
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(**inputs, **{name: cache}, use_cache=True)
    return out.logits, getattr(out, name)


def step_modules(model: Any) -> dict[str, Any]:
    """nn.Modules with the positional signatures the three graphs declare."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states):
            logits, cache = decode_with_cache(
                self.model,
                EncoderDecoderCache(DynamicCache(), DynamicCache()),
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=input_ids,
            )
            return (logits, *flat_cache(cache, with_cross=True))

    class DecoderWithPast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, encoder_attention_mask, *past):
            cache = cache_from_flat(past)
            # Cross-attention keys/values come from the cache; the stack only reads batch,
            # length and dtype of the encoder states for its mask, so a (B, S, 1) stand-in will do.
            stand_in = encoder_attention_mask.unsqueeze(-1).to(past[2].dtype)
            logits, cache = decode_with_cache(
                self.model,
                cache,
                encoder_outputs=(stand_in,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=input_ids,
            )
            return (logits, *flat_cache(cache, with_cross=False))

    return {T5_ENCODER: Encoder().eval(), T5_DECODER: Decoder().eval(), T5_DECODER_WITH_PAST: DecoderWithPast().eval()}


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
