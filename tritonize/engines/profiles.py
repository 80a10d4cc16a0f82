"""TensorRT optimization profiles derived from the declared tensors, never written by hand.

Every symbolic axis of :mod:`tritonize.export.tensors` gets one range from the spec (and from
the data the build sees): the batch axis spans 1..``max_batch_size``, sequence axes span the
length buckets the tokenizer pads to, the decoder axes span what the decoding loop feeds.
Fixed axes (heads, head size, the single new token) are fixed in the profile too. A spec change
moves the profiles; nothing here knows an architecture's sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tritonize.errors import EngineBuildError
from tritonize.export.tensors import (
    BATCH,
    DECODER_SEQUENCE,
    ENCODER_SEQUENCE,
    PAST_DECODER_SEQUENCE,
    SEQUENCE,
    GraphDecl,
)
from tritonize.spec import ModelSpec


@dataclass(frozen=True)
class AxisRange:
    """One axis of a profile; raises EngineBuildError unless 1 <= min <= opt <= max."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise EngineBuildError(f"profile axis needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")

    @classmethod
    def fixed(cls, size: int) -> AxisRange:
        return cls(size, size, size)


@dataclass(frozen=True)
class TensorProfile:
    """min / opt / max shapes of one engine input (``IOptimizationProfile.set_shape``)."""

    name: str
    axes: tuple[AxisRange, ...]

    @property
    def min(self) -> tuple[int, ...]:
        return tuple(a.min for a in self.axes)

    @property
    def opt(self) -> tuple[int, ...]:
        return tuple(a.opt for a in self.axes)

    @property
    def max(self) -> tuple[int, ...]:
        return tuple(a.max for a in self.axes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorProfile:
        return cls(data["name"], tuple(AxisRange(*v) for v in zip(data["min"], data["opt"], data["max"])))


def typical_bucket(model: ModelSpec, token_lengths: Sequence[int]) -> int:
    """The length bucket most of ``token_lengths`` are padded to (the profile's opt)."""
    if not token_lengths:
        return model.length_buckets[0]
    counts: dict[int, int] = {}
    for length in token_lengths:
        bucket = model.bucket_for(length)
        counts[bucket] = counts.get(bucket, 0) + 1
    return max(sorted(counts), key=lambda b: counts[b])  # ties: the smaller bucket


def axis_ranges(model: ModelSpec, opt_sequence: int, label_length: int = 1) -> dict[str, AxisRange]:
    """The range of every symbolic axis for ``model``.

    ``opt_sequence`` is the bucket most requests land in (:func:`typical_bucket`);
    ``label_length`` the longest label in tokens (T5 label scoring feeds whole labels to the
    first decoder step). Requests are padded to buckets, so sequence axes never go below the
    smallest bucket nor above the bucket of ``max_input_length``.
    """
    top = model.bucket_for(model.max_input_length)
    sequence = AxisRange(model.length_buckets[0], min(max(opt_sequence, model.length_buckets[0]), top), top)
    label_length = max(1, label_length)
    past_max = model.generation.max_new_tokens_limit + label_length
    return {
        BATCH: AxisRange(1, model.profile_opt_batch, model.batching.max_batch_size),
        SEQUENCE: sequence,
        ENCODER_SEQUENCE: sequence,
        DECODER_SEQUENCE: AxisRange(1, 1, label_length),
        PAST_DECODER_SEQUENCE: AxisRange(1, min(max(1, model.generation.max_new_tokens - 1), past_max), past_max),
    }


def graph_profiles(graph: GraphDecl, ranges: dict[str, AxisRange]) -> tuple[TensorProfile, ...]:
    """One profile entry per input of ``graph``. Raises EngineBuildError for an axis without a range."""
    profiles = []
    for decl in graph.inputs:
        axes = []
        for axis in decl.axes:
            if isinstance(axis, int):
                axes.append(AxisRange.fixed(axis))
            elif axis in ranges:
                axes.append(ranges[axis])
            else:
                raise EngineBuildError(f"{graph.component} input {decl.name}: axis {axis!r} has no profile range")
        profiles.append(TensorProfile(decl.name, tuple(axes)))
    return tuple(profiles)
