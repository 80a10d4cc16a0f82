"""The build report (``build_report.json``): one typed, versioned record of a build, and its JSON Schema.

Serving (``tritonize serve`` / ``health``), the bench and the tuner all need to know what a
repository holds: which deployments, of which task, from which checkpoint, with which engines
and accuracy gate. They read it here, as :class:`BuildReport`, never as a nested dict: a field
renamed on one side fails at once, on both sides, instead of turning into a silent ``{}``.

This module owns the format. The dataclasses below *are* the format: :func:`_dump` and
:func:`_load` walk their type hints to write and read JSON, and :func:`json_schema` derives
the published schema (``docs/reference/build-report.schema.json``) from the same hints, so
the three cannot disagree. A report of another ``report_version`` or one that does not match
the dataclasses is refused with :class:`ReportError`, which names the file and the field.

Conventions: a field with a default ``None`` is optional and left out of the JSON when unset;
a field without a default is required. Objects that other modules own and version themselves
(an engine's precision plan, its ``build_info.json``, TensorRT's builder settings, a torch
step's precision plans) are carried as plain JSON objects (:data:`JsonObject`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from tritonize import __version__
from tritonize.errors import RepositoryError
from tritonize.spec import Precision, Target, Task

# 1: the untyped report (no ``report_version`` key, free-text engine statuses, T5 ids absent).
# 2: this module: ``report_version``, engine statuses as EngineStatus values, ``decoding`` ids as ints.
REPORT_VERSION = 2
REPORT_FILE = "build_report.json"  # at the repository root

JsonObject = dict[str, Any]  # a JSON object whose format another module owns


class ReportError(RepositoryError):
    """A build report is missing, malformed, or of a ``report_version`` this tritonize does not read."""


class EngineStatus(str, enum.Enum):
    """What happened to one engine step in this build."""

    BUILT = "built"  # built here (build_info and settings are set)
    REUSED = "reused"  # the live repository's engine had the same cache key (cache_key is set)
    PENDING = "pending"  # needs TensorRT and an NVIDIA GPU: build it where they are
    REHEARSED = "rehearsed"  # not built: ONNX Runtime stood in for it in the accuracy gate


# -- the records -------------------------------------------------------------------------------


class _Record:
    """``to_dict`` / ``from_dict`` for the dataclasses of the report, from their type hints."""

    def to_dict(self) -> dict[str, Any]:
        return _dump(self, type(self))

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Any:
        """Raises ReportError naming the field (``where`` prefixes its path) that does not fit."""
        return _load(data, cls, where or cls.__name__)


@dataclass(frozen=True, kw_only=True)
class DemoCheckpoint(_Record):
    """The local demo checkpoint built instead of the hub one (``tritonize build --demo``)."""

    size: str
    architecture: str
    path: str
    train_data: str | None = None  # the text;label file it was fine-tuned on, if any


@dataclass(frozen=True, kw_only=True)
class GraphDiff(_Record):
    max_abs_diff: float


@dataclass(frozen=True, kw_only=True)
class Validation(_Record):
    """The exported FP32 ONNX against PyTorch on the validation texts."""

    max_abs_diff: float
    num_texts: int
    num_batches: int
    tolerance: float
    graph: str | None = None  # text classification: the one graph file
    graphs: dict[str, GraphDiff] | None = None  # text2text: per graph file
    decoder_steps: int | None = None  # text2text: decoding steps compared


@dataclass(frozen=True, kw_only=True)
class GateThresholds(_Record):
    """The spec's accuracy gate as applied (``tolerance``: of the loosest precision compiled)."""

    min_agreement: float
    tie_margin: float
    tolerance: float | None = None
    max_prob_diff: float | None = None


@dataclass(frozen=True, kw_only=True)
class ClassifierGate(_Record):
    """The compiled model step (engine, INT8 graph or PyTorch) against the FP32 ONNX: logits."""

    max_abs_diff: float
    top1_agreement: float  # ties within gate.tie_margin count as agreeing
    top1_strict_agreement: float
    top1_ties: int
    max_prob_diff: float
    num_texts: int
    num_batches: int
    gate: GateThresholds
    rehearsed: bool = False  # ONNX Runtime stood in for the engines (``--rehearse``)
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Text2TextGate(_Record):
    """The compiled T5 steps against the FP32 ONNX graphs, through the greedy decoding loop."""

    encoder_max_abs_diff: float
    token_agreement: float
    sequence_agreement: float
    label_prob_max_diff: float
    num_texts: int
    max_new_tokens: int
    gate: GateThresholds
    rehearsed: bool = False
    note: str | None = None


AccuracyGate = ClassifierGate | Text2TextGate  # a runtime value: _load and json_schema read it


@dataclass(frozen=True, kw_only=True)
class GraphEntry(_Record):
    """The precision graph an engine was (or will be) built from."""

    file: str
    precision: Precision
    fp32_nodes: int  # nodes kept in FP32 by the plan


@dataclass(frozen=True, kw_only=True)
class EngineEntry(_Record):
    """One engine step of the gpu target."""

    engine: EngineStatus
    plan: JsonObject  # tritonize.engines.plan.EnginePlan.to_dict()
    graph: GraphEntry
    build_info: JsonObject | None = None  # EngineStatus.BUILT: tritonize.engines.build_info.BuildInfo.to_dict()
    settings: JsonObject | None = None  # EngineStatus.BUILT: TensorRT builder settings used
    cache_key: str | None = None  # EngineStatus.REUSED: the key the reused engine matched


@dataclass(frozen=True, kw_only=True)
class TorchRuntime(_Record):
    """An embedded torch runtime serving the deployment in PyTorch instead of ONNX/engines."""

    runtime: str
    device: str
    model_class: str
    cuda_graphs: bool
    plans: dict[str, JsonObject]  # by component: tritonize.engines.precision.PrecisionPlan.to_dict()
    files: tuple[str, ...]

    def precisions(self) -> set[str]:
        """The precisions its plans run in (one, when every component runs alike)."""
        return {str(plan["precision"]) for plan in self.plans.values()}


@dataclass(frozen=True, kw_only=True)
class T5Decoding(_Record):
    """The token ids and layer count the T5 decoding loop needs. Triton config parameters are
    strings (:meth:`parameters`); the report and the accuracy gate keep them as ints."""

    pad_token_id: int
    eos_token_id: int
    decoder_start_token_id: int
    num_decoder_layers: int

    def ids(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def parameters(self) -> dict[str, str]:
        """As Triton ``config.pbtxt`` parameters, whose values are strings."""
        return {k: str(v) for k, v in self.ids().items()}


@dataclass(frozen=True, kw_only=True)
class DeploymentEntry(_Record):
    """One deployment: what it was built from, the Triton models it wrote and how it validated."""

    task: Task
    seed_checkpoint: str  # the checkpoint the spec names
    checkpoint: str  # the checkpoint actually built (a demo path with --demo)
    labels: tuple[str, ...]
    validation: Validation
    models: tuple[str, ...]  # Triton model directories it owns (removed before it is rebuilt)
    configs: tuple[str, ...]  # their config.pbtxt, relative to the repository
    demo: DemoCheckpoint | None = None
    decoding: T5Decoding | None = None  # text2text only
    runtime: TorchRuntime | None = None  # embedded torch runtime only
    engines: dict[str, EngineEntry] | None = None  # gpu target: by step (Triton model) name
    accuracy_gate: AccuracyGate | None = None  # when a compiled step (engine, INT8, PyTorch) was gated


@dataclass(frozen=True, kw_only=True)
class BuildReport(_Record):
    """``build_report.json``: the build's settings and one :class:`DeploymentEntry` per deployment."""

    report_version: int = REPORT_VERSION
    tritonize_version: str = __version__
    created: str  # ISO 8601, UTC, seconds
    spec: str  # the spec file built from
    target: Target
    dynamic_batching: bool
    demo: str | None = None  # the demo size with --demo
    rehearsal: str | None = None  # --rehearse: what the rehearsed gate is and is not
    models: dict[str, DeploymentEntry]

    @staticmethod
    def now() -> str:
        return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def deployments(self) -> list[str]:
        """The deployment (entry model) names, sorted."""
        return sorted(self.models)

    def of_task(self, task: Task) -> list[str]:
        """The deployments of ``task``, in build order."""
        return [name for name, entry in self.models.items() if entry.task is task]

    def with_models(self, models: Mapping[str, DeploymentEntry]) -> BuildReport:
        return dataclasses.replace(self, models=dict(models))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json_dict(cls, data: Any, source: str) -> BuildReport:
        """Check ``report_version`` first (a clear message for older and newer reports), then the rest.

        Raises ReportError naming ``source``.
        """
        if not isinstance(data, dict):
            raise ReportError(f"{source}: not a build report (a JSON {type(data).__name__}, not an object)")
        version = data.get("report_version")
        if version is None:
            raise ReportError(
                f"{source}: a build report without report_version (written by tritonize before report_version "
                f"{REPORT_VERSION}); rebuild the repository with `tritonize build`"
            )
        if not isinstance(version, int) or isinstance(version, bool) or version != REPORT_VERSION:
            newer = isinstance(version, int) and version > REPORT_VERSION
            hint = "upgrade tritonize to read it" if newer else "rebuild the repository with `tritonize build`"
            raise ReportError(
                f"{source}: build report version {version!r}, this tritonize {__version__} reads version "
                f"{REPORT_VERSION}: {hint}"
            )
        try:
            return _load(data, cls, "")
        except ReportError as exc:
            raise ReportError(f"{source}: malformed build report: {exc}") from None


# -- reading and writing -----------------------------------------------------------------------


def report_path(repository: Path) -> Path:
    return Path(repository) / REPORT_FILE


def read_report(repository: Path) -> BuildReport:
    """The build report of ``repository``.

    Raises ReportError naming the file: missing, not JSON, another version, or malformed.
    """
    path = report_path(repository)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no build report (is {repository} a repository built by `tritonize build`?)") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the build report ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"{path}: the build report is not JSON ({exc})") from None
    return BuildReport.from_json_dict(data, str(path))


def read_report_if_present(repository: Path) -> BuildReport | None:
    """Like :func:`read_report`, but None when the repository has no report file."""
    return read_report(repository) if report_path(repository).is_file() else None


def write_report(repository: Path, report: BuildReport) -> Path:
    """Write ``report`` into ``repository`` atomically (a reader never sees half a file)."""
    path = report_path(repository)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(report.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


# -- the mapping between the dataclasses and JSON ----------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _dump(value: Any, tp: Any) -> Any:
    if value is None:
        return None
    args = _union_args(tp)
    if args is not None:
        return _dump(value, next(a for a in args if a is not type(None) and _fits(value, a)))
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        out = {}
        for f in dataclasses.fields(tp):
            item = getattr(value, f.name)
            if item is not None:
                out[f.name] = _dump(item, hints[f.name])
        return out
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value.value
    origin = typing.get_origin(tp)
    if origin is tuple:
        return [_dump(v, typing.get_args(tp)[0]) for v in value]
    if origin is dict:
        return {str(k): _dump(v, typing.get_args(tp)[1]) for k, v in value.items()}
    return value


def _fits(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return isinstance(value, origin or tp)


def _load(data: Any, tp: Any, where: str) -> Any:
    if _union_args(tp) is not None:
        return _load_union(data, tp, where)
    if dataclasses.is_dataclass(tp):
        return _load_record(data, tp, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise ReportError(f"{where}: {data!r} is not one of {[m.value for m in tp]}") from None
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(data, list):
            raise ReportError(f"{where}: expected a list, got {type(data).__name__}")
        return tuple(_load(v, typing.get_args(tp)[0], f"{where}[{i}]") for i, v in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            raise ReportError(f"{where}: expected an object, got {type(data).__name__}")
        value_type = typing.get_args(tp)[1]
        return dict(data) if value_type is Any else {k: _load(v, value_type, f"{where}.{k}") for k, v in data.items()}
    return _load_scalar(data, tp, where)


def _load_union(data: Any, tp: Any, where: str) -> Any:
    args = _union_args(tp) or ()
    if data is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return _load(data, options[0], where)
    problems = []
    for option in options:  # records of a union differ in their required fields
        try:
            return _load(data, option, where)
        except ReportError as exc:
            problems.append(f"as {option.__name__}: {exc}")
    raise ReportError(f"{where}: matches none of {[o.__name__ for o in options]} ({'; '.join(problems)})")


def _load_record(data: Any, tp: type, where: str) -> Any:
    if not isinstance(data, dict):
        raise ReportError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ReportError(f"{where}: unknown field(s) {unknown}")
    values = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            values[name] = _load(data[name], hints[name], path)
        elif _required(f):
            raise ReportError(f"{path}: missing")
    return tp(**values)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _load_scalar(data: Any, tp: Any, where: str) -> Any:
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ReportError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if tp in (int, str, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise ReportError(f"{where}: expected {tp.__name__}, got {data!r}")
        return data
    raise TypeError(f"{where}: no JSON mapping for {tp!r}")  # a field type this module does not handle


# -- the JSON Schema ---------------------------------------------------------------------------


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    args = _union_args(tp)
    if args is not None:
        options = [_schema(a, defs) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"oneOf": options}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # reserve: recursion
            hints = _hints(tp)
            fields = dataclasses.fields(tp)
            entry: dict[str, Any] = {"type": "object"}
            if tp.__doc__:
                entry["description"] = " ".join(tp.__doc__.split())
            entry["properties"] = {f.name: _schema(hints[f.name], defs) for f in fields}
            entry["required"] = [f.name for f in fields if _required(f)]
            entry["additionalProperties"] = False
            defs[name] = entry
        return {"$ref": f"#/$defs/{name}"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    origin = typing.get_origin(tp)
    if origin is tuple:
        return {"type": "array", "items": _schema(typing.get_args(tp)[0], defs)}
    if origin is dict:
        value_type = typing.get_args(tp)[1]
        return {"type": "object"} if value_type is Any else {"type": "object", "additionalProperties": _schema(value_type, defs)}
    simple = {float: "number", int: "integer", str: "string", bool: "boolean"}
    return {"type": simple[tp]}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``build_report.json``, from the dataclasses above."""
    defs: dict[str, Any] = {}
    _schema(BuildReport, defs)
    root = dict(defs.pop(BuildReport.__name__))
    root["properties"] = {**root["properties"], "report_version": {"const": REPORT_VERSION}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tritonize build report (build_report.json)",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
