"""T5 export as three ONNX graphs (Optimum's split), their validation, and ORT step runners.

* ``encoder_model.onnx``: input_ids, attention_mask -> last_hidden_state
* ``decoder_model.onnx``: first step (or teacher-forced label scoring); computes every
  layer's self- and cross-attention keys/values
* ``decoder_with_past_model.onnx``: one new token with the cached keys/values

No merged decoder with an ONNX ``If``: TensorRT and Triton handle plain graphs better, and the
BLS model picks the graph per step. Tensor names and axes come from
:func:`tritonize.export.tensors.t5_graphs`; sizes from the HF config, never from literals.
Graphs are exported in FP32 (T5 beyond small overflows in FP16; engines choose precision).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.backends.torch_models import cache_from_flat as _cache_from_flat
from tritonize.backends.torch_models import decode_with_cache
from tritonize.backends.torch_models import flat_cache as _flat_cache
from tritonize.backends.torch_models import t5_modules as _wrappers
from tritonize.errors import ExportError, ValidationError
from tritonize.export.onnx_export import OPSET, dummy_inputs, torch_export
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
from tritonize.export.validate import check_signature, compare, input_batches, open_session

logger = logging.getLogger(__name__)

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
T5_FILES = {T5_ENCODER: ENCODER_FILE, T5_DECODER: DECODER_FILE, T5_DECODER_WITH_PAST: DECODER_WITH_PAST_FILE}
# Export-time shapes; validation runs other batch sizes and lengths.
DUMMY_SIZES = {"batch": 2, ENCODER_SEQUENCE: 7, DECODER_SEQUENCE: 3, PAST_DECODER_SEQUENCE: 3}
VALIDATION_STEPS = 3  # decoder_with_past steps checked per batch


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


def _merge_self(flat: list[Any], new_self: list[Any]) -> list[Any]:
    """Flat (self k, self v, cross k, cross v) per layer with the self-attention part replaced."""
    merged = []
    for layer in range(len(flat) // 4):
        merged += [new_self[2 * layer], new_self[2 * layer + 1], flat[4 * layer + 2], flat[4 * layer + 3]]
    return merged


def _dummy_feeds(model: Any, graphs: dict[str, GraphDecl]) -> dict[str, tuple]:
    """Export-time inputs per graph; the past comes from a real first step, so it is consistent."""
    import torch

    config = model.config
    vocab = normalized(config, "vocab_size")
    enc = dummy_inputs(graphs[T5_ENCODER], DUMMY_SIZES, vocab)
    with torch.no_grad():
        hidden = model.encoder(**enc).last_hidden_state
        dec_ids = dummy_inputs(graphs[T5_DECODER], DUMMY_SIZES, vocab, seed=1)["input_ids"]
        first = _wrappers(model)[T5_DECODER](dec_ids, enc["attention_mask"], hidden)
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
    for component, module in _wrappers(model).items():
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


def _onnx_dir(onnx: Path | T5Export) -> Path:
    return onnx.out_dir if isinstance(onnx, T5Export) else Path(onnx)


def ort_runners(onnx: Path | T5Export) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """ONNX Runtime callables per component: dict of numpy inputs -> dict of named outputs.

    Raises:
        ExportError: a graph cannot be loaded.
    """
    failures: list[str] = []
    runners = {}
    for component, file_name in T5_FILES.items():
        session = open_session(_onnx_dir(onnx) / file_name, failures)
        if session is not None:
            names = [o.name for o in session.get_outputs()]
            runners[component] = lambda feeds, s=session, n=names: dict(zip(n, s.run(n, dict(feeds))))
    if failures:
        raise ExportError("; ".join(failures))
    return runners


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

    return {component: runner(module, graphs[component]) for component, module in _wrappers(model).items()}


class _StepValidator:
    """Runs PyTorch and ORT side by side for one batch and records diffs per graph."""

    def __init__(self, model: Any, sessions: dict[str, Any], tolerance: float, failures: list[str]) -> None:
        self.model = model
        self.sessions = sessions
        self.tolerance = tolerance
        self.failures = failures
        self.graphs = t5_graphs(model.config)
        self.modules = _wrappers(model)
        self.max_diff = dict.fromkeys(T5_FILES.values(), 0.0)

    def _run(self, component: str, feeds: dict[str, Any], where: str) -> dict[str, Any] | None:
        session = self.sessions[component]
        names = [o.name for o in self.graphs[component].outputs]
        try:
            return dict(zip(names, session.run(names, feeds)))
        except Exception as exc:  # ORT errors on a shape the graph cannot take
            self.failures.append(f"{where}: run failed: {exc}")
            return None

    def _compare(self, component: str, where: str, expected: dict[str, Any], actual: dict[str, Any]) -> None:
        file_name = T5_FILES[component]
        for name, value in expected.items():
            diff = compare(f"{where} {name}", value, actual[name], self.tolerance, self.failures)
            self.max_diff[file_name] = max(self.max_diff[file_name], diff)

    def batch(self, ids: Any, mask: Any, label: str) -> bool:
        """Encoder, first decoder step (1 and several tokens), then decoder-with-past steps.

        Returns False when a graph could not run (the failure is recorded; later batches would
        only repeat it).
        """
        import torch

        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        start = self.model.config.decoder_start_token_id
        with torch.no_grad():
            hidden = self.model.encoder(input_ids=t_ids, attention_mask=t_mask).last_hidden_state
            where = f"{ENCODER_FILE} {label}"
            got = self._run(T5_ENCODER, {"input_ids": ids, "attention_mask": mask}, where)
            if got is None:
                return False
            self._compare(T5_ENCODER, where, {"last_hidden_state": hidden.numpy()}, got)
            # Teacher-forced first step over several tokens (label scoring) ...
            forced = torch.cat([torch.full_like(t_ids[:, :1], start), t_ids[:, :4]], dim=1)
            if self._first_step(forced, t_mask, hidden, f"{DECODER_FILE} {label} tokens={forced.shape[1]}") is None:
                return False
            # ... and the generation path: start token, then greedy steps with the cache.
            tokens = torch.full_like(t_ids[:, :1], start)
            state = self._first_step(tokens, t_mask, hidden, f"{DECODER_FILE} {label} tokens=1")
            for step in range(VALIDATION_STEPS):
                if state is None:
                    return False
                tokens = torch.cat([tokens, state[0][:, -1:].argmax(-1)], dim=1)
                state = self._past_step(
                    tokens, t_mask, hidden, state[1], f"{DECODER_WITH_PAST_FILE} {label} step={step + 1}"
                )
        return True

    def _first_step(self, tokens: Any, t_mask: Any, hidden: Any, where: str) -> tuple[Any, list[Any]] | None:
        """decoder_model vs PyTorch (the module the export traced); returns PyTorch's (logits, flat cache)."""
        logits, *flat = self.modules[T5_DECODER](tokens, t_mask, hidden)
        feeds = {
            "input_ids": tokens.numpy(),
            "encoder_attention_mask": t_mask.numpy(),
            "encoder_hidden_states": hidden.numpy(),
        }
        got = self._run(T5_DECODER, feeds, where)
        if got is None:
            return None
        names = [o.name for o in self.graphs[T5_DECODER].outputs]
        self._compare(T5_DECODER, where, dict(zip(names, [logits.numpy(), *(t.numpy() for t in flat)])), got)
        return logits, flat

    def _past_step(
        self, tokens: Any, t_mask: Any, hidden: Any, flat: list[Any], where: str
    ) -> tuple[Any, list[Any]] | None:
        """decoder_with_past_model on the last token vs PyTorch; returns PyTorch's (logits, flat cache).

        Expected logits come from a cache-free pass over the whole prefix, so the cache wiring
        is checked too, not only the graph's agreement with the same cached computation.
        """
        feeds = {"input_ids": tokens[:, -1:].numpy(), "encoder_attention_mask": t_mask.numpy()}
        feeds.update({n: t.numpy() for n, t in zip(self._past_names(), flat)})
        got = self._run(T5_DECODER_WITH_PAST, feeds, where)
        if got is None:
            return None
        model = self.model
        cached_logits, cache = decode_with_cache(
            model,
            _cache_from_flat(flat),
            encoder_outputs=(hidden,),
            attention_mask=t_mask,
            decoder_input_ids=tokens[:, -1:],
        )
        full = model(encoder_outputs=(hidden,), attention_mask=t_mask, decoder_input_ids=tokens).logits[:, -1:]
        new_self = _flat_cache(cache, with_cross=False)
        expected = {"logits": full.numpy(), **{n: t.numpy() for n, t in zip(self._present_self_names(), new_self)}}
        self._compare(T5_DECODER_WITH_PAST, where, expected, got)
        return cached_logits, _merge_self(flat, new_self)

    def _past_names(self) -> list[str]:
        return [t.name for t in self.graphs[T5_DECODER_WITH_PAST].inputs[2:]]

    def _present_self_names(self) -> list[str]:
        return [t.name for t in self.graphs[T5_DECODER_WITH_PAST].outputs[1:]]


def validate_t5(
    checkpoint: str | Path, onnx: Path | T5Export, texts: Sequence[str], tolerance: float, name: str | None = None
) -> dict[str, Any]:
    """Check the three graphs (in a directory, or as exported) against PyTorch step by step on ``texts``.

    Returns ``{"graphs": {file: {"max_abs_diff": d}}, "max_abs_diff", "num_texts", "num_batches",
    "decoder_steps", "tolerance"}``.

    Raises:
        ValidationError: listing every mismatch (names, dtypes, axes, shapes, values) of every graph.
        ExportError: the checkpoint cannot be loaded.
    """
    from transformers import AutoTokenizer

    onnx_dir = _onnx_dir(onnx)
    label = name or str(checkpoint)
    if not texts:
        raise ValidationError(label, ["no texts to validate with"])
    model = load_seq2seq(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    failures: list[str] = []
    graphs = t5_graphs(model.config)
    sessions = {}
    for component, file_name in T5_FILES.items():
        session = open_session(onnx_dir / file_name, failures)
        if session is not None:
            check_signature(session, graphs[component], file_name, failures)
            sessions[component] = session
    batches = input_batches(tokenizer, texts, int(getattr(model.config, "n_positions", 512) or 512))
    validator = _StepValidator(model, sessions, tolerance, failures)
    if len(sessions) == len(T5_FILES) and not failures:
        for i, batch in enumerate(batches):
            validator.batch(
                batch["input_ids"], batch["attention_mask"], f"batch {i} shape {list(batch['input_ids'].shape)}"
            )
    if failures:
        raise ValidationError(label, failures)
    graph_report = {file_name: {"max_abs_diff": diff} for file_name, diff in validator.max_diff.items()}
    report = {
        "graphs": graph_report,
        "max_abs_diff": max(validator.max_diff.values()),
        "num_texts": len(texts),
        "num_batches": len(batches),
        "decoder_steps": 1 + VALIDATION_STEPS,
        "tolerance": tolerance,
    }
    logger.info("validated %s: %s", onnx_dir, {k: f"{v['max_abs_diff']:.3g}" for k, v in graph_report.items()})
    return report
