"""Validation of the three T5 graphs against PyTorch, step by step, and ONNX Runtime step runners.

Each decoder step is checked against a cache-free PyTorch pass on shapes unlike the export's
(batch sizes, lengths, several ``decoder_with_past`` steps), every failure is collected, and one
:class:`~tritonize.errors.ValidationError` names them all. Separate from the export so that the
export writes files and this module only reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tritonize.errors import ExportError, ValidationError
from tritonize.export.t5 import DECODER_FILE, DECODER_WITH_PAST_FILE, ENCODER_FILE, T5_FILES, T5Export
from tritonize.export.t5_torch import cache_from_flat, decode_with_cache, flat_cache, load_seq2seq, merge_self
from tritonize.export.tensors import T5_DECODER, T5_DECODER_WITH_PAST, T5_ENCODER, t5_graphs
from tritonize.export.validate import check_signature, compare, input_batches, open_session

logger = logging.getLogger(__name__)

VALIDATION_STEPS = 3  # decoder_with_past steps checked per batch


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


class _StepValidator:
    """Runs PyTorch and ORT side by side for one batch and records diffs per graph."""

    def __init__(self, model: Any, sessions: dict[str, Any], tolerance: float, failures: list[str]) -> None:
        self.model = model
        self.sessions = sessions
        self.tolerance = tolerance
        self.failures = failures
        self.graphs = t5_graphs(model.config)
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
        """decoder_model vs PyTorch; returns PyTorch's (logits, flat cache) to go on with."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        logits, cache = decode_with_cache(
            self.model,
            EncoderDecoderCache(DynamicCache(), DynamicCache()),
            encoder_outputs=(hidden,),
            attention_mask=t_mask,
            decoder_input_ids=tokens,
        )
        flat = flat_cache(cache, with_cross=True)
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
            cache_from_flat(flat),
            encoder_outputs=(hidden,),
            attention_mask=t_mask,
            decoder_input_ids=tokens[:, -1:],
        )
        full = model(encoder_outputs=(hidden,), attention_mask=t_mask, decoder_input_ids=tokens).logits[:, -1:]
        new_self = flat_cache(cache, with_cross=False)
        expected = {"logits": full.numpy(), **{n: t.numpy() for n, t in zip(self._present_self_names(), new_self)}}
        self._compare(T5_DECODER_WITH_PAST, where, expected, got)
        return cached_logits, merge_self(flat, new_self)

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
