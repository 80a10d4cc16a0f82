"""The declarative model spec: the single source of truth for every generated artefact.

A spec file (TOML) lists deployments (``[[model]]`` tables) and the servers that run them
(``[server]``, ``[kubernetes]``). Export, engine builds, every ``config.pbtxt``, compose,
Kubernetes and monitoring files are derived from the typed records loaded here, so a fact is
written down once. This module imports neither torch nor TensorRT, so spec checks are instant.

A ``[[model]]`` table is flat, as users write it; in Python a :class:`ModelSpec` groups its
fields by what they govern (:class:`BatchingSpec`, :class:`PythonStepsSpec`,
:class:`GenerationSpec`, :class:`EngineSpec`, :class:`GateSpec`). A TOML key and its attribute
have the same name (``max_batch_size`` is ``model.batching.max_batch_size``), and each field's
``doc`` metadata is the text of the generated spec reference (``docs/reference/spec.md``).
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from tritonize.errors import SpecError
from tritonize.urls import GRPC_PORT, HTTP_PORT, METRICS_PORT

DEFAULT_SPEC = "models.toml"


def _field(default: Any, doc: str, **kwargs: Any) -> Any:
    """A dataclass field whose ``doc`` is the generated reference's description of it."""
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata={"doc": doc}, **kwargs)
    return field(default=default, metadata={"doc": doc}, **kwargs)


class Task(str, enum.Enum):
    """Hugging Face pipeline task names, spelled as ``pipeline()`` spells them."""

    TEXT_CLASSIFICATION = "text-classification"
    TEXT2TEXT_GENERATION = "text2text-generation"


class Target(str, enum.Enum):
    """Where the model step runs; the rest of the ensemble is identical for all targets."""

    EMBEDDED = "embedded"  # Python-backend ONNX Runtime runner (pytriton's bundled server)
    CPU = "cpu"  # NGC container, onnxruntime_onnx backend on CPU
    GPU = "gpu"  # NGC container, tensorrt_plan backend


class Runtime(str, enum.Enum):
    """What runs the embedded target's model step (``embedded_runtime``; other targets ignore it).

    ``onnxruntime``: the exported ONNX graph in ONNX Runtime on the CPU. ``torch-cuda``: the
    checkpoint itself in PyTorch on the GPUs (no TensorRT needed), CUDA graphs per shape bucket;
    ``torch-cpu``: the same code on the CPU (how it is tested without a GPU).
    """

    ONNXRUNTIME = "onnxruntime"
    TORCH_CUDA = "torch-cuda"
    TORCH_CPU = "torch-cpu"

    @property
    def is_torch(self) -> bool:
        return self is not Runtime.ONNXRUNTIME

    @property
    def device(self) -> str:
        """The torch device kind (``cuda``/``cpu``); ONNX Runtime runs on the CPU."""
        return "cuda" if self is Runtime.TORCH_CUDA else "cpu"


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
# The torch runtimes run the precision plans of TensorRT engines (tritonize.engines.precision).
TORCH_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.BF16)
# Max |engine - FP32 ONNX| of the validated outputs, per engine precision; BF16 keeps 8 mantissa bits.
_DEFAULT_ENGINE_TOLERANCE = {Precision.FP32: 1e-2, Precision.FP16: 1e-1, Precision.BF16: 2.5e-1}

Rule = tuple[bool, str, str]  # (broken, field, problem)


def _first_broken(rules: list[Rule], source: str, prefix: str) -> None:
    """Raise a SpecError naming the first broken rule's field."""
    for broken, name, problem in rules:
        if broken:
            raise SpecError(source, f"{prefix}{name}" if prefix else name, problem)


# --- the sections of a deployment -----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class BatchingSpec:
    """How Triton schedules the model step(s): dynamic batching, instances and the queue policy.

    Without a queue bound, overload shows up as latency that grows without limit; with one,
    Triton refuses the excess at once (``Exceeds maximum queue size`` / ``Request timeout
    expired``, HTTP 503, gRPC UNAVAILABLE) and clients can back off. 0 means "no limit" for
    both bounds, as in Triton's ``ModelQueuePolicy``.
    """

    max_batch_size: int = _field(32, "Triton `max_batch_size` of every step (rows per request and per batch)")
    max_queue_delay_us: int = _field(2000, "the dynamic batcher's `max_queue_delay_microseconds` (model step)")
    max_queue_size: int = _field(
        128, "requests that may wait in each batched step's queue; more are refused at once (0 = unbounded)"
    )
    queue_timeout_us: int = _field(0, "a request waiting longer in a step's queue is refused (0 = never)")
    allow_timeout_override: bool = _field(
        False, "whether a request's own `timeout` parameter may replace `queue_timeout_us`"
    )
    instances: int = _field(1, "`instance_group` count of the model step")
    generate_instances: int = _field(
        1, "`instance_group` count of the T5 BLS entry model (overlaps whole `execute()` calls)"
    )

    def rules(self) -> list[Rule]:
        return [
            (
                self.max_batch_size < 1,
                "max_batch_size",
                f"must be >= 1 (dynamic batching needs a batch dimension), got {self.max_batch_size}",
            ),
            (self.instances < 1, "instances", f"must be >= 1, got {self.instances}"),
            (self.generate_instances < 1, "generate_instances", f"must be >= 1, got {self.generate_instances}"),
            (self.max_queue_delay_us < 0, "max_queue_delay_us", f"must be >= 0, got {self.max_queue_delay_us}"),
            (self.max_queue_size < 0, "max_queue_size", f"must be >= 0 (0 = unbounded), got {self.max_queue_size}"),
            (self.queue_timeout_us < 0, "queue_timeout_us", f"must be >= 0 (0 = no timeout), got {self.queue_timeout_us}"),
        ]


@dataclass(frozen=True, kw_only=True)
class PythonStepsSpec:
    """The Python-backend steps (tokenizer, postprocess, the embedded target's fused step).

    ``python_max_batch_size`` is the rows one ``execute()`` may gather from queued requests
    (>= ``max_batch_size``, so whole requests merge); ``fuse_steps`` runs tokenizer + ONNX
    Runtime + postprocess as one Python model on the embedded target (one stub crossing
    instead of three).
    """

    python_instances: int = _field(1, "`instance_group` count of the Python steps")
    python_max_batch_size: int = _field(0, "rows one `execute()` of a Python step may gather (0 = `max_batch_size`)")
    python_max_queue_delay_us: int = _field(0, "the Python steps' batcher wait (0: take what is queued)")
    fuse_steps: bool = _field(False, "embedded target: tokenizer + ONNX Runtime + postprocess in one Python model")

    def rules(self, max_batch_size: int) -> list[Rule]:
        return [
            (self.python_instances < 1, "python_instances", f"must be >= 1, got {self.python_instances}"),
            (
                self.python_max_batch_size != 0 and self.python_max_batch_size < max_batch_size,
                "python_max_batch_size",
                f"must be 0 or >= max_batch_size ({max_batch_size}), got {self.python_max_batch_size}",
            ),
            (
                self.python_max_queue_delay_us < 0,
                "python_max_queue_delay_us",
                f"must be >= 0, got {self.python_max_queue_delay_us}",
            ),
        ]


@dataclass(frozen=True, kw_only=True)
class GenerationSpec:
    """Greedy generation of text2text deployments (T5)."""

    max_new_tokens: int = _field(1, "tokens generated when a request does not say (text2text only)")
    max_new_tokens_limit: int = _field(32, "the largest `max_new_tokens` a request may ask for")

    def rules(self) -> list[Rule]:
        return [
            (
                not 1 <= self.max_new_tokens <= self.max_new_tokens_limit,
                "max_new_tokens",
                f"must be in 1..max_new_tokens_limit ({self.max_new_tokens_limit}), got {self.max_new_tokens}",
            )
        ]


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """What the model step is compiled to, per target (ONNX Runtime graphs, TensorRT engines)."""

    precision: dict[Target, Precision] = _field(
        lambda: dict(_DEFAULT_PRECISION),
        "per target: embedded / cpu = fp32 or int8; gpu = fp32, fp16 or bf16 (a request for a TensorRT precision "
        "plan, which keeps overflow-prone T5 layers in FP32 and falls back where a GPU lacks BF16)",
    )
    opt_batch_size: int | None = _field(
        None, "TensorRT profile opt batch and the batcher's preferred size (default `max_batch_size`)"
    )
    workspace_mb: int = _field(2048, "TensorRT builder WORKSPACE memory pool (MiB)")
    embedded_runtime: Runtime = _field(
        Runtime.ONNXRUNTIME,
        "the embedded target's model runtime: `onnxruntime`, `torch-cuda` (PyTorch on the GPUs, no TensorRT; "
        "precision.embedded fp32, fp16 or bf16 planned as for TensorRT) or `torch-cpu`",
    )
    instance_gpus: tuple[int, ...] = _field(
        (), "torch-cuda: GPU indices its instances go on, `python_instances` on each (empty: every GPU the server sees)"
    )

    def supported_precisions(self, target: Target) -> tuple[Precision, ...]:
        """What ``target`` compiles this deployment in (the embedded target's depends on its runtime)."""
        if target is Target.EMBEDDED and self.embedded_runtime.is_torch:
            return TORCH_PRECISIONS
        return SUPPORTED_PRECISIONS[target]

    def rules(self, max_batch_size: int) -> list[Rule]:
        gpus = list(self.instance_gpus)
        return [
            (
                self.opt_batch_size is not None and not 1 <= self.opt_batch_size <= max_batch_size,
                "opt_batch_size",
                f"must be in 1..max_batch_size ({max_batch_size}), got {self.opt_batch_size}",
            ),
            (self.workspace_mb < 64, "workspace_mb", f"must be >= 64 MiB, got {self.workspace_mb}"),
            *(
                (
                    precision not in self.supported_precisions(target),
                    f"precision.{target.value}",
                    f"{precision.value} is not supported on the {target.value} target{self._runtime_note(target)}; "
                    f"choose one of {[p.value for p in self.supported_precisions(target)]}",
                )
                for target, precision in self.precision.items()
            ),
            (
                bool(gpus) and self.embedded_runtime is not Runtime.TORCH_CUDA,
                "instance_gpus",
                f"places torch-cuda instances on GPUs; embedded_runtime is {self.embedded_runtime.value}, got {gpus}",
            ),
            (
                any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus),
                "instance_gpus",
                f"must be distinct GPU indices >= 0, got {gpus}",
            ),
        ]

    def _runtime_note(self, target: Target) -> str:
        return f" with embedded_runtime {self.embedded_runtime.value}" if target is Target.EMBEDDED else ""


@dataclass(frozen=True, kw_only=True)
class GateSpec:
    """What a build checks before it writes anything: the export against PyTorch, and every faster
    graph (TensorRT engine, INT8 ONNX) against the FP32 export on real sentences."""

    tolerance: float = _field(1e-4, "max |ONNX - PyTorch| the export validation accepts")
    engine_tolerance: dict[Precision, float] = _field(
        lambda: dict(_DEFAULT_ENGINE_TOLERANCE), "per precision, max |engine - FP32 ONNX| the accuracy gate accepts"
    )
    min_agreement: float = _field(
        0.99, "top-1 (classifier) / teacher-forced greedy-token (T5) agreement with FP32 a faster graph must keep"
    )
    max_prob_diff: float | None = _field(None, "optional bound on max |probability - FP32 probability|")
    tie_margin: float = _field(
        0.01,
        "a changed top-1 label (classifier) or token (T5, teacher-forced) that FP32 rated within this probability "
        "of its own choice counts as a tie, not a disagreement (strict agreement is reported beside it)",
    )

    def rules(self) -> list[Rule]:
        return [
            (
                not 0 < self.tolerance < 1e-2,
                "tolerance",
                f"must be in (0, 1e-2): a larger one would switch the check off, got {self.tolerance}",
            ),
            (
                not all(0 < t < 1 for t in self.engine_tolerance.values()),
                "engine_tolerance",
                f"every tolerance must be in (0, 1): a larger one would switch the check off, got "
                f"{ {p.value: t for p, t in self.engine_tolerance.items()} }",
            ),
            (not 0.5 <= self.min_agreement <= 1, "min_agreement", f"must be in [0.5, 1], got {self.min_agreement}"),
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
        ]


SECTIONS: dict[str, type] = {
    "batching": BatchingSpec,
    "python": PythonStepsSpec,
    "generation": GenerationSpec,
    "engine": EngineSpec,
    "gate": GateSpec,
}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One deployment as a user declares it.

    ``labels`` empty means "take them from the checkpoint's ``id2label``" (resolved at build
    time, when the checkpoint is at hand). ``length_buckets`` are the sequence lengths a
    request may be padded to: on CPU compute is proportional to padded tokens, so buckets are
    fine-grained and each request is padded only to the smallest bucket that fits it.
    """

    name: str = field(metadata={"doc": "Triton model name of the deployment (the ensemble / BLS entry point)"})
    checkpoint: str = field(metadata={"doc": "Hugging Face hub name or local path, read with `from_pretrained()`"})
    task: Task = field(metadata={"doc": "`text-classification` or `text2text-generation` (HF pipeline names)"})
    demo: str | None = _field(
        None, "architecture of the local demo checkpoint `tritonize build --demo` builds in place of `checkpoint`"
    )
    labels: tuple[str, ...] = _field((), "class names (T5: the words it answers with); empty = the checkpoint's id2label")
    length_buckets: tuple[int, ...] = _field(
        (16, 32, 64, 128, 256, 512), "sequence lengths a request is padded to (the smallest that fits)"
    )
    max_input_length: int = _field(512, "longer inputs are truncated, never rejected")
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    python: PythonStepsSpec = field(default_factory=PythonStepsSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    engine: EngineSpec = field(default_factory=EngineSpec)
    gate: GateSpec = field(default_factory=GateSpec)
    source: str = "<spec>"

    def __post_init__(self) -> None:
        _first_broken(self._rules(), self.source, f"{self.name}." if self.name else "")

    def _rules(self) -> list[Rule]:
        buckets = list(self.length_buckets)
        name_ok = bool(self.name) and self.name.replace("_", "").replace("-", "").isalnum()
        return [
            (not name_ok, "name", f"must be a non-empty identifier of letters, digits, '_' or '-', got {self.name!r}"),
            (not self.checkpoint, "checkpoint", "must name a hub checkpoint or a local path"),
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
            *self.batching.rules(),
            *self.python.rules(self.batching.max_batch_size),
            *self.generation.rules(),
            *self.engine.rules(self.batching.max_batch_size),
            *self.gate.rules(),
            (
                self.engine.embedded_runtime.is_torch and self.task is Task.TEXT_CLASSIFICATION and not self.python.fuse_steps,
                "fuse_steps",
                f"embedded_runtime {self.engine.embedded_runtime.value} runs the classifier as one fused step: "
                "set fuse_steps = true",
            ),
        ]

    @property
    def python_batch(self) -> int:
        """Rows one execute() of a Python step may gather (``python_max_batch_size`` or max_batch_size)."""
        return self.python.python_max_batch_size or self.batching.max_batch_size

    @property
    def engine_batch(self) -> int:
        """Rows per model call of the embedded fused step. On CPUs (ONNX Runtime, torch-cpu)
        ``max_batch_size``: cost follows padded tokens, so groups stay small and tight. On CUDA
        every row one execute() gathers (``python_batch``): a GPU is fed by large batches
        (DistilBERT FP16 measured 10k seq/s at batch 32 and 95k at 512 on one H200), and CUDA
        graphs make the padding to row buckets cheap."""
        if self.engine.embedded_runtime is Runtime.TORCH_CUDA:
            return self.python_batch
        return self.batching.max_batch_size

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
        return self.engine.opt_batch_size or self.batching.max_batch_size

    def replace(self, **values: Any) -> ModelSpec:
        """A copy with spec fields changed by their TOML names (``max_batch_size=4``), each routed to
        its section; the copy is checked like a loaded spec. Raises SpecError for an unknown name."""
        top, sections = _route(values, self.source, self.name)
        changed = {s: dataclasses.replace(getattr(self, s), **kw) for s, kw in sections.items()}
        return dataclasses.replace(self, **top, **changed)

    def value(self, key: str) -> Any:
        """A field by its TOML key (``"python_instances"``), wherever its section keeps it: what tools
        that read and write spec keys by name (``tritonize tune --write-spec``) compare."""
        section = _FIELD_SECTION.get(key)
        if section is None and key not in _TOP_FIELDS:
            raise SpecError(self.source, f"{self.name}.{key}", f"unknown field; known fields: {MODEL_KEYS}")
        return getattr(getattr(self, section), key) if section else getattr(self, key)

    def __getattr__(self, name: str) -> Any:
        """Flat attribute names (``model.max_batch_size``) from before the sections, with a warning."""
        section = _FIELD_SECTION.get(name)
        if section is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        warnings.warn(
            f"ModelSpec.{name} is deprecated: use ModelSpec.{section}.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(getattr(self, section), name)


_TOP_FIELDS = {f.name for f in dataclasses.fields(ModelSpec) if f.name not in SECTIONS and f.name != "source"}
_FIELD_SECTION = {f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
MODEL_KEYS = sorted(_TOP_FIELDS | set(_FIELD_SECTION))  # every key a [[model]] table may hold


def _route(values: dict[str, Any], source: str, label: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Flat spec keys -> (top-level fields, {section: fields}). Raises SpecError for an unknown key."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in _TOP_FIELDS:
            top[key] = value
        elif key in _FIELD_SECTION:
            sections.setdefault(_FIELD_SECTION[key], {})[key] = value
        else:
            raise SpecError(source, f"{label}.{key}", f"unknown field; known fields: {MODEL_KEYS}")
    return top, sections


def model_spec(**values: Any) -> ModelSpec:
    """A :class:`ModelSpec` from flat spec keys, as a ``[[model]]`` table holds them (typed values)."""
    source = values.pop("source", "<spec>")
    top, sections = _route(values, source, values.get("name", "model"))
    built = {name: SECTIONS[name](**kw) for name, kw in sections.items()}
    return ModelSpec(**top, **built, source=source)


# --- the servers ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """The ``[server]`` table: what one Triton server of a GPU/CPU deployment gets (compose and Kubernetes).

    Optional: every field has a default. Ports are Triton's own defaults; ``shm_size_mib`` sizes
    ``/dev/shm``, where the Python backend passes every tensor between the server and its stub
    processes, T5 KV caches included (Docker's default /dev/shm is 64 MiB).

    ``http_max_input_mib`` caps one HTTP request body (``--http-max-input-size``, where the pinned
    Triton has the flag; Triton's default is 64 MiB, far above any request of these deployments).
    ``cuda_memory_pool_mib`` is Triton's CUDA memory pool per GPU (``--cuda-memory-pool-byte-size``,
    gpu target): Triton's default of 64 MiB is smaller than one batch of a T5 KV cache, which the
    Python backend copies into that pool for every BLS call that passes GPU tensors.
    """

    gpus: int = _field(1, "GPUs per server (compose device reservation, Kubernetes `nvidia.com/gpu` limit)")
    http_port: int = _field(HTTP_PORT, "Triton's HTTP port")
    grpc_port: int = _field(GRPC_PORT, "Triton's gRPC port")
    metrics_port: int = _field(METRICS_PORT, "Triton's Prometheus metrics port")
    shm_size_mib: int = _field(1024, "/dev/shm of a server: the Python backend moves every tensor through it")
    cpus: float = _field(4.0, "CPUs requested for one server")
    memory_gib: int = _field(16, "memory requested for one server (its /dev/shm is added to the limit)")
    queue_time_target_us: int = _field(
        20000,
        "the servers' queue-time budget: the autoscaler adds servers and an alert fires above this average queue "
        "time per request (must exceed every `max_queue_delay_us`)",
    )
    http_max_input_mib: int = _field(16, "largest HTTP request body Triton accepts (`--http-max-input-size`)")
    cuda_memory_pool_mib: int = _field(
        256, "Triton's CUDA memory pool per GPU (gpu target): holds the T5 KV caches the BLS calls pass"
    )
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
            (self.queue_time_target_us < 1, "queue_time_target_us", f"must be >= 1, got {self.queue_time_target_us}"),
            (self.cpus <= 0, "cpus", f"must be > 0, got {self.cpus}"),
            (self.memory_gib < 1, "memory_gib", f"must be >= 1, got {self.memory_gib}"),
            (self.http_max_input_mib < 1, "http_max_input_mib", f"must be >= 1 MiB, got {self.http_max_input_mib}"),
            (self.cuda_memory_pool_mib < 64, "cuda_memory_pool_mib", f"must be >= 64 MiB (Triton's default), got {self.cuda_memory_pool_mib}"),
        ]
        _first_broken(rules, self.source, "server.")


@dataclass(frozen=True, kw_only=True)
class KubernetesSpec:
    """The ``[kubernetes]`` table: how many servers run and what the cluster gives them."""

    replicas: int = _field(1, "servers the Deployment starts with")
    max_replicas: int = _field(4, "the autoscaler's upper bound")
    storage_gib: int = _field(20, "the model repository volume")
    monitoring_namespace: str = _field("monitoring", "the only namespace allowed to scrape the metrics port")
    source: str = "<spec>"

    def __post_init__(self) -> None:
        namespace = self.monitoring_namespace
        rules = [
            (self.replicas < 1, "replicas", f"must be >= 1, got {self.replicas}"),
            (self.max_replicas < self.replicas, "max_replicas", f"must be >= replicas ({self.replicas}), got {self.max_replicas}"),
            (self.storage_gib < 1, "storage_gib", f"must be >= 1, got {self.storage_gib}"),
            (
                not namespace.replace("-", "").isalnum() or namespace != namespace.lower(),
                "monitoring_namespace",
                f"must be a Kubernetes namespace name (lower-case letters, digits, '-'), got {namespace!r}",
            ),
        ]
        _first_broken(rules, self.source, "kubernetes.")


@dataclass(frozen=True, kw_only=True)
class MonitoringSpec:
    """The ``[monitoring]`` table: how Prometheus scrapes the servers and when it alerts.

    Optional: every field has a default. Rates are taken over four scrape intervals (Prometheus
    needs at least two samples in a window; four tolerate a missed scrape). The queue-time alert
    uses the ``[server]`` table's ``queue_time_target_us``, the autoscaler's target.
    """

    scrape_interval_s: int = _field(15, "how often Prometheus scrapes a server's metrics port (s)")
    failure_ratio_alert: float = _field(0.01, "alert above this ratio of failed to all requests of a model (refusals apart)")
    gpu_memory_ratio_alert: float = _field(0.9, "alert above this ratio of used to total memory of a GPU")
    alert_for_s: int = _field(300, "how long a condition must hold before its alert fires (s)")
    server_down_for_s: int = _field(60, "how long a server may not answer scrapes before its alert fires (s)")
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
        _first_broken(rules, self.source, "monitoring.")

    @property
    def rate_window_s(self) -> int:
        return 4 * self.scrape_interval_s


@dataclass(frozen=True, kw_only=True)
class Spec:
    """All deployments of one spec file, and the servers that run them."""

    models: tuple[ModelSpec, ...]
    source: str = "<spec>"
    server: ServerSpec = field(default_factory=ServerSpec)
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(self.source, "model.name", f"duplicate deployment names {dupes}")
        self._check_server()
        self._check_instance_gpus()

    def _check_instance_gpus(self) -> None:
        """A deployment's instances go on GPUs its server has (``server.gpus``, indices from 0)."""
        for model in self.models:
            gpus = model.engine.instance_gpus
            if gpus and max(gpus) >= self.server.gpus:
                raise SpecError(
                    self.source,
                    f"{model.name}.instance_gpus",
                    f"GPU {max(gpus)} is not on a server with server.gpus = {self.server.gpus} "
                    f"(indices 0..{self.server.gpus - 1}), got {list(gpus)}",
                )

    def _check_server(self) -> None:
        """The batcher's own delay counts as queue time: a target below it would scale out an idle cluster."""
        delays = [m.batching.max_queue_delay_us for m in self.models]
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


# --- parsing --------------------------------------------------------------------------------
def _parse_enum(enum_type: type[enum.Enum], value: Any, source: str, field_name: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = [e.value for e in enum_type]
        raise SpecError(source, field_name, f"must be one of {allowed}, got {value!r}") from None


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


_TUPLE_ITEMS = {"labels": str, "length_buckets": int, "instance_gpus": int}  # TOML lists -> tuples
_TABLE_PARSERS = {"precision": _parse_precision, "engine_tolerance": _parse_engine_tolerance}
REQUIRED_KEYS = ("name", "checkpoint", "task")  # of a [[model]] table


def _model_field(key: str) -> dataclasses.Field:
    cls = SECTIONS[_FIELD_SECTION[key]] if key in _FIELD_SECTION else ModelSpec
    return next(f for f in dataclasses.fields(cls) if f.name == key)


def _parse_scalar(key: str, value: Any, source: str, where: str) -> Any:
    """A plain TOML value checked against the field's declared type (``int``, ``float``, ``bool``, ``str``)."""
    declared = str(_model_field(key).type)
    if "bool" in declared:
        if not isinstance(value, bool):
            raise SpecError(source, where, f"must be true or false, got {value!r}")
        return value
    if "float" in declared:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SpecError(source, where, f"must be of type number, got {value!r}")
        return float(value)
    expected = int if "int" in declared else str
    if not isinstance(value, expected) or isinstance(value, bool):
        raise SpecError(source, where, f"must be of type {expected.__name__}, got {value!r}")
    return value


def _parse_value(key: str, value: Any, source: str, where: str) -> Any:
    """One field's TOML value as the spec takes it. Raises SpecError naming the field."""
    if key == "task":
        return _parse_enum(Task, value, source, where)
    if key == "embedded_runtime":
        return _parse_enum(Runtime, value, source, where)
    if key in _TABLE_PARSERS:
        return _TABLE_PARSERS[key](value, source, where)
    if key in _TUPLE_ITEMS:
        item_type = _TUPLE_ITEMS[key]
        if not isinstance(value, list) or not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
            raise SpecError(source, where, f"must be a list of {item_type.__name__}, got {value!r}")
        return tuple(value)
    return _parse_scalar(key, value, source, where)


def _parse_model(raw: dict[str, Any], source: str, index: int) -> ModelSpec:
    label = raw.get("name", f"model[{index}]")
    unknown = sorted(k for k in raw if k not in MODEL_KEYS)
    if unknown:
        raise SpecError(source, f"{label}.{unknown[0]}", f"unknown field; known fields: {MODEL_KEYS}")
    for required in REQUIRED_KEYS:
        if required not in raw:
            raise SpecError(source, f"{label}.{required}", "is required")
    values = {key: _parse_value(key, value, source, f"{label}.{key}") for key, value in raw.items()}
    return model_spec(**values, source=source)


def _parse_table(cls: type, raw: Any, source: str, table: str) -> Any:
    """An optional ``[server]`` / ``[kubernetes]`` table: unknown keys and wrong types are errors."""
    if not isinstance(raw, dict):
        raise SpecError(source, table, f"must be a table: [{table}]")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {"source": source}
    for key, value in raw.items():
        if key not in fields:
            raise SpecError(source, f"{table}.{key}", f"unknown field; known fields: {sorted(fields)}")
        number = "float" in str(fields[key].type)
        expected = (int, float) if number else type(fields[key].default)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise SpecError(source, f"{table}.{key}", f"must be of type {getattr(expected, '__name__', 'number')}, got {value!r}")
        kwargs[key] = float(value) if number else value
    return cls(**kwargs)


_KUBERNETES_KEYS = {f.name for f in dataclasses.fields(KubernetesSpec)} - {"source"}


def _server_tables(data: dict[str, Any], source: str) -> tuple[ServerSpec, KubernetesSpec]:
    """``[server]`` and ``[kubernetes]``; Kubernetes keys still found in ``[server]`` move, with a warning."""
    server = dict(data.get("server", {}) or {}) if isinstance(data.get("server", {}), dict) else data.get("server")
    kubernetes = data.get("kubernetes", {})
    if isinstance(server, dict) and isinstance(kubernetes, dict):
        moved = sorted(k for k in server if k in _KUBERNETES_KEYS)
        if moved:
            warnings.warn(
                f"{source}: [server] {', '.join(moved)} moved to the [kubernetes] table; the old place is deprecated",
                FutureWarning,
                stacklevel=3,
            )
            kubernetes = {**{k: server.pop(k) for k in moved}, **kubernetes}
    return _parse_table(ServerSpec, server, source, "server"), _parse_table(KubernetesSpec, kubernetes, source, "kubernetes")


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse spec TOML text. Raises :class:`SpecError` naming the file and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "<toml>", f"not valid TOML: {exc}") from None
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise SpecError(source, "model", "needs at least one [[model]] table")
    extra = sorted(set(data) - {"model", "server", "kubernetes", "monitoring"})
    if extra:
        raise SpecError(
            source, extra[0], "unknown top-level key; only [[model]] tables and the [server], [kubernetes] and "
            "[monitoring] tables are allowed"
        )
    server, kubernetes = _server_tables(data, source)
    return Spec(
        models=tuple(_parse_model(raw, source, i) for i, raw in enumerate(models)),
        source=source,
        server=server,
        kubernetes=kubernetes,
        monitoring=_parse_table(MonitoringSpec, data.get("monitoring", {}), source, "monitoring"),
    )


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
