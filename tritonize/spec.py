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
from tritonize.urls import GRPC_PORT, HTTP_PORT, METRICS_PORT

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
    BF16 = "bf16"
    INT8 = "int8"


_DEFAULT_PRECISION = {Target.EMBEDDED: Precision.FP32, Target.CPU: Precision.FP32, Target.GPU: Precision.FP16}
# What each target can compile: ONNX Runtime on CPU runs FP32 or dynamically quantized INT8
# graphs; TensorRT builds FP32/FP16/BF16 engines (INT8 engines would need calibration data).
SUPPORTED_PRECISIONS = {
    Target.EMBEDDED: (Precision.FP32, Precision.INT8),
    Target.CPU: (Precision.FP32, Precision.INT8),
    Target.GPU: (Precision.FP32, Precision.FP16, Precision.BF16),
}
# Max |engine - FP32 ONNX| of the validated outputs, per engine precision. FP32 engines may use
# TF32 on Ampere and later, so even they are not bit-exact; BF16 keeps 8 mantissa bits.
_DEFAULT_ENGINE_TOLERANCE = {Precision.FP32: 1e-2, Precision.FP16: 1e-1, Precision.BF16: 2.5e-1}


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
    generate_instances: int = 1  # instances of the T5 BLS entry model (overlap whole execute() calls)
    max_queue_delay_us: int = 2000
    max_queue_size: int = 128
    queue_timeout_us: int = 0
    allow_timeout_override: bool = False
    precision: dict[Target, Precision] = field(default_factory=lambda: dict(_DEFAULT_PRECISION))
    max_new_tokens: int = 1
    max_new_tokens_limit: int = 32
    tolerance: float = 1e-4
    opt_batch_size: int | None = None  # TensorRT profile opt / preferred batch; None = max_batch_size
    workspace_mb: int = 2048  # TensorRT builder WORKSPACE memory pool
    engine_tolerance: dict[Precision, float] = field(default_factory=lambda: dict(_DEFAULT_ENGINE_TOLERANCE))
    min_agreement: float = 0.99  # top-1 (classifier) / token (T5) agreement a faster graph must keep
    max_prob_diff: float | None = None  # optional gate: max |probability - FP32 probability| (None: reported only)
    tie_margin: float = 0.01  # classifier gate: a top-1 change where FP32 rated both classes this close is a tie
    # Python steps (tokenizer, postprocess, the embedded target's fused step): instances, the
    # rows one execute() may gather from queued requests (>= max_batch_size, so whole requests
    # merge), and the batcher's wait. fuse_steps: on the embedded target, tokenizer + ONNX
    # Runtime + postprocess run as one Python model (one stub crossing instead of three).
    python_instances: int = 1
    python_max_batch_size: int = 0  # 0: max_batch_size
    python_max_queue_delay_us: int = 0
    fuse_steps: bool = False
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
            (self.generate_instances < 1, "generate_instances", f"must be >= 1, got {self.generate_instances}"),
            (self.python_instances < 1, "python_instances", f"must be >= 1, got {self.python_instances}"),
            (
                self.python_max_batch_size != 0 and self.python_max_batch_size < self.max_batch_size,
                "python_max_batch_size",
                f"must be 0 or >= max_batch_size ({self.max_batch_size}), got {self.python_max_batch_size}",
            ),
            (
                self.python_max_queue_delay_us < 0,
                "python_max_queue_delay_us",
                f"must be >= 0, got {self.python_max_queue_delay_us}",
            ),
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
            (
                self.opt_batch_size is not None and not 1 <= self.opt_batch_size <= self.max_batch_size,
                "opt_batch_size",
                f"must be in 1..max_batch_size ({self.max_batch_size}), got {self.opt_batch_size}",
            ),
            (self.workspace_mb < 64, "workspace_mb", f"must be >= 64 MiB, got {self.workspace_mb}"),
            (
                not all(0 < t < 1 for t in self.engine_tolerance.values()),
                "engine_tolerance",
                f"every tolerance must be in (0, 1): a larger one would switch the check off, got "
                f"{ {p.value: t for p, t in self.engine_tolerance.items()} }",
            ),
            (
                not 0.5 <= self.min_agreement <= 1,
                "min_agreement",
                f"must be in [0.5, 1], got {self.min_agreement}",
            ),
            (
                not 0 <= self.tie_margin < 0.5,
                "tie_margin",
                f"must be in [0, 0.5): a wider margin would excuse confident disagreements, got {self.tie_margin}",
            ),
            (
                self.max_prob_diff is not None and not 0 < self.max_prob_diff < 1,
                "max_prob_diff",
                f"must be in (0, 1): 1 or more would switch the gate off, got {self.max_prob_diff}",
            ),
            *(
                (
                    precision not in SUPPORTED_PRECISIONS[target],
                    f"precision.{target.value}",
                    f"{precision.value} is not supported on the {target.value} target; "
                    f"choose one of {[p.value for p in SUPPORTED_PRECISIONS[target]]}",
                )
                for target, precision in self.precision.items()
            ),
        ]
        return [(name, problem) for broken, name, problem in rules if broken]

    @property
    def python_batch(self) -> int:
        """Rows one execute() of a Python step may gather (``python_max_batch_size`` or max_batch_size)."""
        return self.python_max_batch_size or self.max_batch_size

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

    @property
    def profile_opt_batch(self) -> int:
        """The batch size TensorRT tunes for and the dynamic batcher prefers."""
        return self.opt_batch_size or self.max_batch_size


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """The ``[server]`` table: what one Triton server of a deployment gets (compose and Kubernetes).

    Optional: every field has a default. Ports are Triton's own defaults; ``shm_size_mib`` sizes
    ``/dev/shm``, where the Python backend passes every tensor between the server and its stub
    processes, T5 KV caches included (Docker's default /dev/shm is 64 MiB). ``replicas`` /
    ``max_replicas`` bound the Kubernetes autoscaler, which adds servers when the average queue
    time per request goes over ``queue_time_target_us``.
    """

    gpus: int = 1
    http_port: int = HTTP_PORT
    grpc_port: int = GRPC_PORT
    metrics_port: int = METRICS_PORT
    shm_size_mib: int = 1024
    replicas: int = 1
    max_replicas: int = 4
    queue_time_target_us: int = 20000
    cpus: float = 4.0
    memory_gib: int = 16
    storage_gib: int = 20
    monitoring_namespace: str = "monitoring"
    source: str = "<spec>"

    def __post_init__(self) -> None:
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        rules = [
            (self.gpus < 1, "gpus", f"must be >= 1 GPU per server, got {self.gpus}"),
            (
                not all(1 <= p <= 65535 for p in ports) or len(set(ports)) != 3,
                "http_port",
                f"http/grpc/metrics ports must be three distinct ports in 1..65535, got {list(ports)}",
            ),
            (self.shm_size_mib < 64, "shm_size_mib", f"must be >= 64 MiB, got {self.shm_size_mib}"),
            (self.replicas < 1, "replicas", f"must be >= 1, got {self.replicas}"),
            (
                self.max_replicas < self.replicas,
                "max_replicas",
                f"must be >= replicas ({self.replicas}), got {self.max_replicas}",
            ),
            (self.queue_time_target_us < 1, "queue_time_target_us", f"must be >= 1, got {self.queue_time_target_us}"),
            (self.cpus <= 0, "cpus", f"must be > 0, got {self.cpus}"),
            (self.memory_gib < 1, "memory_gib", f"must be >= 1, got {self.memory_gib}"),
            (self.storage_gib < 1, "storage_gib", f"must be >= 1, got {self.storage_gib}"),
            (
                not self.monitoring_namespace.replace("-", "").isalnum() or self.monitoring_namespace != self.monitoring_namespace.lower(),
                "monitoring_namespace",
                f"must be a Kubernetes namespace name (lower-case letters, digits, '-'), got {self.monitoring_namespace!r}",
            ),
        ]
        for broken, name, problem in rules:
            if broken:
                raise SpecError(self.source, f"server.{name}", problem)


@dataclass(frozen=True, kw_only=True)
class MonitoringSpec:
    """The ``[monitoring]`` table: how Prometheus scrapes the servers and when it alerts.

    Optional: every field has a default. Rates are taken over four scrape intervals (Prometheus
    needs at least two samples in a window; four tolerate a missed scrape). The queue-time alert
    uses the ``[server]`` table's ``queue_time_target_us``, the autoscaler's target.
    """

    scrape_interval_s: int = 15
    failure_ratio_alert: float = 0.01  # failed / all requests of a model (refusals apart)
    gpu_memory_ratio_alert: float = 0.9  # used / total memory of a GPU
    alert_for_s: int = 300  # how long a condition must hold before its alert fires
    server_down_for_s: int = 60  # ... except a server that does not answer scrapes
    source: str = "<spec>"

    def __post_init__(self) -> None:
        rules = [
            (not 1 <= self.scrape_interval_s <= 300, "scrape_interval_s", f"must be in 1..300 s, got {self.scrape_interval_s}"),
            (not 0 < self.failure_ratio_alert < 1, "failure_ratio_alert", f"must be in (0, 1), got {self.failure_ratio_alert}"),
            (
                not 0 < self.gpu_memory_ratio_alert < 1,
                "gpu_memory_ratio_alert",
                f"must be in (0, 1), got {self.gpu_memory_ratio_alert}",
            ),
            (self.alert_for_s < 0, "alert_for_s", f"must be >= 0 s, got {self.alert_for_s}"),
            (self.server_down_for_s < 0, "server_down_for_s", f"must be >= 0 s, got {self.server_down_for_s}"),
        ]
        for broken, name, problem in rules:
            if broken:
                raise SpecError(self.source, f"monitoring.{name}", problem)

    @property
    def rate_window_s(self) -> int:
        return 4 * self.scrape_interval_s


@dataclass(frozen=True, kw_only=True)
class Spec:
    """All deployments of one spec file."""

    models: tuple[ModelSpec, ...]
    source: str = "<spec>"
    server: ServerSpec = field(default_factory=ServerSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(self.source, "model.name", f"duplicate deployment names {dupes}")
        self._check_server()

    def _check_server(self) -> None:
        """The batcher's own delay counts as queue time: a target below it would scale out an idle cluster."""
        delays = [m.max_queue_delay_us for m in self.models]
        if delays and self.server.queue_time_target_us <= max(delays):
            raise SpecError(
                self.source,
                "server.queue_time_target_us",
                f"must be above the largest max_queue_delay_us ({max(delays)}): the dynamic batcher's delay "
                f"is queue time, got {self.server.queue_time_target_us}",
            )

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
_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "checkpoint": str,
    "demo": str,
    "max_batch_size": int,
    "max_input_length": int,
    "instances": int,
    "generate_instances": int,
    "max_queue_delay_us": int,
    "max_queue_size": int,
    "queue_timeout_us": int,
    "max_new_tokens": int,
    "max_new_tokens_limit": int,
    "tolerance": (int, float),
    "opt_batch_size": int,
    "workspace_mb": int,
    "min_agreement": (int, float),
    "max_prob_diff": (int, float),
    "tie_margin": (int, float),
    "python_instances": int,
    "python_max_batch_size": int,
    "python_max_queue_delay_us": int,
    "fuse_steps": bool,
    "allow_timeout_override": bool,
}
_FLOAT_FIELDS = ("tolerance", "min_agreement", "max_prob_diff", "tie_margin")


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
        kwargs[key] = _parse_value(key, value, source, f"{label}.{key}")
    return ModelSpec(**kwargs)


def _parse_value(key: str, value: Any, source: str, where: str) -> Any:
    """One field's TOML value as ModelSpec takes it. Raises SpecError naming the field."""
    if key == "task":
        return _parse_enum(Task, value, source, where)
    if key in _TABLE_FIELDS:
        return _TABLE_FIELDS[key](value, source, where)
    if key in _TUPLE_FIELDS:
        item_type = _TUPLE_FIELDS[key]
        if not isinstance(value, list) or not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
            raise SpecError(source, where, f"must be a list of {item_type.__name__}, got {value!r}")
        return tuple(value)
    expected = _SCALAR_TYPES[key]
    if expected is bool and not isinstance(value, bool):
        raise SpecError(source, where, f"must be true or false, got {value!r}")
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise SpecError(source, where, f"must be of type {getattr(expected, '__name__', 'number')}, got {value!r}")
    return float(value) if key in _FLOAT_FIELDS else value


def _parse_precision(value: Any, source: str, where: str) -> dict[Target, Precision]:
    """``{ gpu = "fp16" }``: overrides the default precision of the targets it names."""
    if not isinstance(value, dict):
        raise SpecError(source, where, "must be a table of target = precision")
    precision = dict(_DEFAULT_PRECISION)
    for target, prec in value.items():
        key = f"{where}.{target}"
        precision[_parse_enum(Target, target, source, key)] = _parse_enum(Precision, prec, source, key)
    return precision


def _parse_engine_tolerance(value: Any, source: str, where: str) -> dict[Precision, float]:
    """``{ fp16 = 0.05 }``: overrides the default tolerance of the precisions it names."""
    if not isinstance(value, dict):
        raise SpecError(source, where, "must be a table of precision = tolerance")
    tolerances = dict(_DEFAULT_ENGINE_TOLERANCE)
    for name, tolerance in value.items():
        precision = _parse_enum(Precision, name, source, f"{where}.{name}")
        if precision not in tolerances:
            raise SpecError(source, f"{where}.{name}", f"engines are built in {[p.value for p in tolerances]} only")
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool):
            raise SpecError(source, f"{where}.{name}", f"must be a number, got {tolerance!r}")
        tolerances[precision] = float(tolerance)
    return tolerances


_TABLE_FIELDS = {"precision": _parse_precision, "engine_tolerance": _parse_engine_tolerance}


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse spec TOML text. Raises :class:`SpecError` naming the file and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "<toml>", f"not valid TOML: {exc}") from None
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise SpecError(source, "model", "needs at least one [[model]] table")
    extra = sorted(set(data) - {"model", "server", "monitoring"})
    if extra:
        raise SpecError(
            source, extra[0], "unknown top-level key; only [[model]] tables, a [server] and a [monitoring] table are allowed"
        )
    return Spec(
        models=tuple(_parse_model(raw, source, i) for i, raw in enumerate(models)),
        source=source,
        server=_parse_table(data.get("server", {}), source, "server", ServerSpec),
        monitoring=_parse_table(data.get("monitoring", {}), source, "monitoring", MonitoringSpec),
    )


def _parse_table(raw: Any, source: str, table: str, cls: type) -> Any:
    """An optional ``[server]`` / ``[monitoring]`` table as ``cls``; same conventions as a model table
    (unknown keys and wrong types are errors). A field whose default is a float takes an integer too."""
    if not isinstance(raw, dict):
        raise SpecError(source, table, f"must be a table: [{table}]")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {"source": source}
    for key, value in raw.items():
        if key not in fields:
            raise SpecError(source, f"{table}.{key}", f"unknown field; known fields: {sorted(fields)}")
        number = isinstance(fields[key].default, float)
        expected = (int, float) if number else type(fields[key].default)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise SpecError(source, f"{table}.{key}", f"must be of type {getattr(expected, '__name__', 'number')}, got {value!r}")
        kwargs[key] = float(value) if number else value
    return cls(**kwargs)


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
