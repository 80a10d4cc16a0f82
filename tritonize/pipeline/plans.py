"""Engine plans for the gpu target, from the checkpoint's config, its tokenizer and real text.

Shared by the build (which compiles the plans) and ``tritonize build --plan`` (which prints
them without exporting anything). The opt sequence length is the bucket most of the
validation texts land in after the checkpoint's own tokenizer; the longest label sets the
decoder axes of label scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tritonize.engines.plan import EnginePlan, engine_plan
from tritonize.engines.precision import family_of
from tritonize.engines.profiles import axis_ranges, typical_bucket
from tritonize.export.tensors import GraphDecl
from tritonize.spec import ModelSpec


def token_lengths(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Token counts of ``texts`` as the served tokenizer step would see them (truncated)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return [len(ids) for ids in encoded]


def label_length(tokenizer: Any, labels: Sequence[str]) -> int:
    """The longest label in tokens, ``</s>`` included (what label scoring feeds the decoder)."""
    return max((len(tokenizer(label)["input_ids"]) for label in labels), default=1)


def gpu_plans(
    model: ModelSpec,
    config: Any,
    graphs: dict[str, GraphDecl],
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[str] = (),
) -> dict[str, EnginePlan]:
    """One plan per step name in ``graphs`` (step name -> declared graph)."""
    opt = typical_bucket(model, token_lengths(tokenizer, texts, model.max_input_length))
    ranges = axis_ranges(model, opt, label_length(tokenizer, labels) if labels else 1)
    family = family_of(config)
    return {step: engine_plan(model, step, graph, family, ranges) for step, graph in graphs.items()}
