"""The declarative model spec: the single source of truth for every generated artefact.

A spec file (TOML) lists deployments. Export, engine builds and every ``config.pbtxt`` are
derived from the typed :class:`ModelSpec` loaded here, so one fact is written down once.
This module imports neither torch nor TensorRT, so spec checks are instant.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from tritonize.errors import SpecError

DEFAULT_SPEC = "models.toml"


class Task(str, enum.Enum):
    """Hugging Face pipeline task names, spelled as ``pipeline()`` spells them."""

    TEXT_CLASSIFICATION = "text-classification"
    TEXT2TEXT_GENERATION = "text2text-generation"


class Target(str, enum.Enum):
    """Where the model step runs; the rest of the ensemble is identical for all targets."""

    EMBEDDED = "embedded"  # Python-backend ONNX Runtime runner (pytriton's bundled server)
    CPU = "cpu"  # NGC container, onnxruntime_onnx backend on CPU
    GPU = "gpu"  # NGC container, tensorrt_plan backend


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


_DEFAULT_PRECISION = {Target.EMBEDDED: Precision.FP32, Target.CPU: Precision.FP32, Target.GPU: Precision.FP16}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One deployment as a user declares it.

    ``labels`` empty means "take them from the checkpoint's ``id2label``" (resolved at build
    time, when the checkpoint is at hand). ``length_buckets`` are the sequence lengths a
    request may be padded to: on CPU compute is proportional to padded tokens, so buckets are
    fine-grained and each request is padded only to the smallest bucket that fits it.

    ``max_queue_size``, ``queue_timeout_us`` and ``allow_timeout_override`` are the queue policy
    of every step with a dynamic batcher: without a bound, overload shows up as latency that
    grows without limit; with one, Triton refuses the excess at once (``Exceeds maximum queue
    size`` / ``Request timeout expired``, HTTP 503, gRPC UNAVAILABLE) and clients can back off.
    0 means "no limit" for both, as in Triton's ``ModelQueuePolicy``.
    """

    name: str
    checkpoint: str
    task: Task
    demo: str
    labels: tuple[str, ...] = ()
    max_batch_size: int = 32
    length_buckets: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    max_input_length: int = 512
    instances: int = 1
    max_queue_delay_us: int = 2000
    max_queue_size: int = 128
    queue_timeout_us: int = 0
    allow_timeout_override: bool = False
    precision: dict[Target, Precision] = field(default_factory=lambda: dict(_DEFAULT_PRECISION))
    max_new_tokens: int = 1
    max_new_tokens_limit: int = 32
    tolerance: float = 1e-4
    source: str = "<spec>"

    def __post_init__(self) -> None:
        for name, problem in self._problems():
            raise SpecError(self.source, "name" if name == "name" else f"{self.name}.{name}", problem)

    def _problems(self) -> list[tuple[str, str]]:
        """(field, problem) for every broken rule; the first one is raised."""
        buckets = list(self.length_buckets)
        rules = [
            (
                not self.name or not self.name.replace("_", "").replace("-", "").isalnum(),
                "name",
                f"must be a non-empty identifier of letters, digits, '_' or '-', got {self.name!r}",
            ),
            (not self.checkpoint, "checkpoint", "must name a hub checkpoint or a local path"),
            (
                self.max_batch_size < 1,
                "max_batch_size",
                f"must be >= 1 (dynamic batching needs a batch dimension), got {self.max_batch_size}",
            ),
            (self.instances < 1, "instances", f"must be >= 1, got {self.instances}"),
            (self.max_queue_delay_us < 0, "max_queue_delay_us", f"must be >= 0, got {self.max_queue_delay_us}"),
            (self.max_queue_size < 0, "max_queue_size", f"must be >= 0 (0 = unbounded), got {self.max_queue_size}"),
            (self.queue_timeout_us < 0, "queue_timeout_us", f"must be >= 0 (0 = no timeout), got {self.queue_timeout_us}"),
            (self.max_input_length < 2, "max_input_length", f"must be >= 2, got {self.max_input_length}"),
            (
                not buckets or buckets[0] < 1 or buckets != sorted(set(buckets)),
                "length_buckets",
                f"must be strictly increasing positive lengths, got {buckets}",
            ),
            (
                bool(buckets) and buckets[-1] < self.max_input_length,
                "length_buckets",
                f"largest bucket {buckets[-1] if buckets else None} must cover max_input_length {self.max_input_length}",
            ),
            (
                len(set(self.labels)) != len(self.labels) or not all(self.labels),
                "labels",
                f"must be distinct non-empty names, got {list(self.labels)}",
            ),
            (
                not 1 <= self.max_new_tokens <= self.max_new_tokens_limit,
                "max_new_tokens",
                f"must be in 1..max_new_tokens_limit ({self.max_new_tokens_limit}), got {self.max_new_tokens}",
            ),
            (
                not 0 < self.tolerance < 1e-2,
                "tolerance",
                f"must be in (0, 1e-2): a larger one would switch the check off, got {self.tolerance}",
            ),
        ]
        return [(name, problem) for broken, name, problem in rules if broken]

    @property
    def is_generative(self) -> bool:
        return self.task is Task.TEXT2TEXT_GENERATION

    def bucket_for(self, length: int) -> int:
        """Smallest length bucket holding ``length`` tokens (inputs are truncated to max length)."""
        length = min(length, self.max_input_length)
        for bucket in self.length_buckets:
            if bucket >= length:
                return bucket
        return self.length_buckets[-1]

    def with_checkpoint(self, checkpoint: str) -> ModelSpec:
        return dataclasses.replace(self, checkpoint=checkpoint)

    def with_labels(self, labels: tuple[str, ...]) -> ModelSpec:
        return dataclasses.replace(self, labels=tuple(labels))


@dataclass(frozen=True, kw_only=True)
class Spec:
    """All deployments of one spec file."""

    models: tuple[ModelSpec, ...]
    source: str = "<spec>"

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(self.source, "model.name", f"duplicate deployment names {dupes}")

    def get(self, name: str) -> ModelSpec:
        for model in self.models:
            if model.name == name:
                return model
        raise SpecError(self.source, "model.name", f"no deployment named {name!r}; known: {[m.name for m in self.models]}")

    def select(self, names: list[str] | None) -> Spec:
        if not names:
            return self
        return dataclasses.replace(self, models=tuple(self.get(n) for n in names))


_FIELDS = {f.name: f for f in dataclasses.fields(ModelSpec)}
_TUPLE_FIELDS = {"labels": str, "length_buckets": int}
_BOOL_FIELDS = {"allow_timeout_override"}
_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "checkpoint": str,
    "demo": str,
    "max_batch_size": int,
    "max_input_length": int,
    "instances": int,
    "max_queue_delay_us": int,
    "max_queue_size": int,
    "queue_timeout_us": int,
    "max_new_tokens": int,
    "max_new_tokens_limit": int,
    "tolerance": (int, float),
}


def _parse_enum(enum_type: type[enum.Enum], value: Any, source: str, field_name: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = [e.value for e in enum_type]
        raise SpecError(source, field_name, f"must be one of {allowed}, got {value!r}") from None


def _parse_model(raw: dict[str, Any], source: str, index: int) -> ModelSpec:
    label = raw.get("name", f"model[{index}]")
    unknown = sorted(k for k in raw if k not in _FIELDS or k == "source")
    if unknown:
        raise SpecError(source, f"{label}.{unknown[0]}", f"unknown field; known fields: {sorted(set(_FIELDS) - {'source'})}")
    for required in ("name", "checkpoint", "task", "demo"):
        if required not in raw:
            raise SpecError(source, f"{label}.{required}", "is required")
    kwargs: dict[str, Any] = {"source": source}
    for key, value in raw.items():
        where = f"{label}.{key}"
        if key == "task":
            kwargs[key] = _parse_enum(Task, value, source, where)
        elif key == "precision":
            if not isinstance(value, dict):
                raise SpecError(source, where, "must be a table of target = precision")
            precision = dict(_DEFAULT_PRECISION)
            for target, prec in value.items():
                precision[_parse_enum(Target, target, source, f"{where}.{target}")] = _parse_enum(
                    Precision, prec, source, f"{where}.{target}"
                )
            kwargs[key] = precision
        elif key in _TUPLE_FIELDS:
            item_type = _TUPLE_FIELDS[key]
            if not isinstance(value, list) or not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
                raise SpecError(source, where, f"must be a list of {item_type.__name__}, got {value!r}")
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _parse_scalar(key, value, source, where)
    return ModelSpec(**kwargs)


def _parse_scalar(key: str, value: Any, source: str, where: str) -> Any:
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise SpecError(source, where, f"must be true or false, got {value!r}")
        return value
    expected = _SCALAR_TYPES[key]
    if not isinstance(value, expected) or isinstance(value, bool):
        raise SpecError(source, where, f"must be of type {getattr(expected, '__name__', 'number')}, got {value!r}")
    return float(value) if key == "tolerance" else value


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse spec TOML text. Raises :class:`SpecError` naming the file and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "<toml>", f"not valid TOML: {exc}") from None
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise SpecError(source, "model", "needs at least one [[model]] table")
    extra = sorted(set(data) - {"model"})
    if extra:
        raise SpecError(source, extra[0], "unknown top-level key; only [[model]] tables are allowed")
    return Spec(models=tuple(_parse_model(raw, source, i) for i, raw in enumerate(models)), source=source)


def load_spec(path: str | Path | None = None) -> Spec:
    """Load a spec file; ``None`` loads the spec shipped with tritonize (``tritonize/models.toml``)."""
    if path is None:
        text = resources.files("tritonize").joinpath(DEFAULT_SPEC).read_text(encoding="utf-8")
        return parse_spec(text, source=f"tritonize/{DEFAULT_SPEC}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), "<file>", f"cannot read: {exc.strerror}") from None
    return parse_spec(text, source=str(path))
