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

Conventions: a field without a default is required. A field with a default (``None``, or
``False`` for a flag) is optional: left out of the JSON when it has its default, and given its
default when read without it. Objects that other modules own and version themselves
(an engine's precision plan, its ``build_info.json``, TensorRT's builder settings, a torch
step's precision plans) are carried as plain JSON objects (:data:`JsonObject`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, Union

from tritonize import __version__
from tritonize.errors import RepositoryError
from tritonize.spec import Precision, Target, Task

# 1: the untyped report (no ``report_version`` key, free-text engine statuses, T5 ids absent).
# 2: this module: ``report_version``, engine statuses as EngineStatus values, ``decoding`` ids as ints,
#    unset optional fields left out (no ``null``s).
# 3: the text2text gate's token agreement is taken under teacher forcing, with ties (token_strict_agreement,
#    token_ties beside it).
REPORT_VERSION = 3
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


def doc(text: str, default: Any = dataclasses.MISSING) -> Any:
    """A field with its description: the JSON Schema carries it to the report's readers."""
    return dataclasses.field(default=default, metadata={"doc": text})


class _Record:
    """``to_dict`` / ``from_dict`` for the dataclasses of the report, from their type hints."""

    def to_dict(self) -> dict[str, Any]:
        return _dump(self, type(self))

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        """Raises ReportError naming the field (``where`` prefixes its path) that does not fit."""
        return _load(data, cls, where or cls.__name__)


@dataclass(frozen=True, kw_only=True)
class DemoCheckpoint(_Record):
    """The local demo checkpoint built instead of the hub one (``tritonize build --demo``)."""

    size: str = doc("the demo size (`--demo`)")
    architecture: str = doc("the spec's `demo` architecture")
    path: str = doc("where the demo checkpoint was written")
    train_data: str | None = doc("the text;label file it was fine-tuned on, if any", None)


@dataclass(frozen=True, kw_only=True)
class GraphDiff(_Record):
    """One graph's largest difference from PyTorch."""

    max_abs_diff: float = doc("max |ONNX - PyTorch| over every output and text")


@dataclass(frozen=True, kw_only=True)
class Validation(_Record):
    """The exported FP32 ONNX against PyTorch on the validation texts."""

    max_abs_diff: float = doc("max |ONNX - PyTorch| over every output and text (the largest of the graphs)")
    num_texts: int = doc("validation texts compared")
    num_batches: int = doc("batches they were sent in (several batch sizes and lengths)")
    tolerance: float = doc("the spec's tolerance the difference had to stay within")
    graph: str | None = doc("text classification: the one graph file", None)
    graphs: dict[str, GraphDiff] | None = doc("text2text: per graph file", None)
    decoder_steps: int | None = doc("text2text: decoding steps compared", None)


@dataclass(frozen=True, kw_only=True)
class GateThresholds(_Record):
    """The spec's accuracy gate as applied (``tolerance``: of the loosest precision compiled)."""

    min_agreement: float = doc("least top-1 (classifier) or token (text2text) agreement with FP32")
    tie_margin: float = doc(
        "a changed top-1 label or token whose FP32 probability is this close to FP32's choice counts as a tie"
    )
    tolerance: float | None = doc("largest output difference allowed; absent when only agreement is gated", None)
    max_prob_diff: float | None = doc("largest probability difference allowed, if any", None)


@dataclass(frozen=True, kw_only=True)
class _GateFigures(_Record):
    """What every accuracy gate records beside its figures: the thresholds, and whether ONNX Runtime
    stood in for the engines."""

    gate: GateThresholds = doc("the thresholds applied")
    rehearsed: bool = doc("ONNX Runtime stood in for the engines (``--rehearse``)", False)
    note: str | None = doc("what a rehearsed gate is and is not", None)


@dataclass(frozen=True, kw_only=True)
class ClassifierGate(_GateFigures):
    """The compiled model step (engine, INT8 graph or PyTorch) against the FP32 ONNX: logits."""

    max_abs_diff: float = doc("max |compiled - FP32| of the logits")
    top1_agreement: float = doc("share of texts with FP32's top-1 label; ties within gate.tie_margin count as agreeing")
    top1_strict_agreement: float = doc("the same, ties counted as disagreeing")
    top1_ties: int = doc("changed top-1 labels excused as ties")
    max_prob_diff: float = doc("max |compiled - FP32| of the label probabilities")
    num_texts: int = doc("texts gated")
    num_batches: int = doc("batches they were sent in")


@dataclass(frozen=True, kw_only=True)
class Text2TextGate(_GateFigures):
    """The compiled T5 steps against the FP32 ONNX graphs, through the greedy decoding loop."""

    encoder_max_abs_diff: float = doc("max |compiled - FP32| of the encoder states at attended positions")
    token_agreement: float = doc(
        "share of FP32's generated tokens the compiled steps choose after the same prefix (teacher forcing); "
        "ties within gate.tie_margin count as agreeing"
    )
    token_strict_agreement: float = doc("the same, ties counted as disagreeing")
    token_ties: int = doc("changed tokens excused as ties")
    sequence_agreement: float = doc("share of texts whose free-running generated sequence equals FP32's")
    label_prob_max_diff: float = doc("max |compiled - FP32| of the label scores' probabilities")
    num_texts: int = doc("texts gated")
    max_new_tokens: int = doc("tokens generated per text")


AccuracyGate = ClassifierGate | Text2TextGate  # a runtime value: _load and json_schema read it


@dataclass(frozen=True, kw_only=True)
class GraphEntry(_Record):
    """The precision graph an engine was (or will be) built from."""

    file: str = doc("its file name in the step's version directory")
    precision: Precision = doc("the graph's (and engine's) precision")
    fp32_nodes: int = doc("nodes kept in FP32 by the plan")


@dataclass(frozen=True, kw_only=True)
class EngineEntry(_Record):
    """One engine step of the gpu target."""

    engine: EngineStatus = doc("what happened to this engine in this build")
    plan: JsonObject = doc("the engine plan: step, precision, profiles, workspace (tritonize.engines.plan.EnginePlan)")
    graph: GraphEntry = doc("the precision graph the engine is built from")
    build_info: JsonObject | None = doc("engine built: its build_info.json (tritonize.engines.build_info.BuildInfo)", None)
    settings: JsonObject | None = doc("engine built: the TensorRT builder settings used", None)
    cache_key: str | None = doc("engine reused: the cache key the live repository's engine matched", None)


@dataclass(frozen=True, kw_only=True)
class TorchRuntime(_Record):
    """An embedded torch runtime serving the deployment in PyTorch instead of ONNX/engines."""

    runtime: str = doc("the spec's embedded_runtime, e.g. torch-cpu or torch-cuda")
    device: str = doc("the torch device it runs on")
    model_class: str = doc("the transformers class that loads the checkpoint")
    cuda_graphs: bool = doc("whether it replays CUDA graphs")
    plans: dict[str, JsonObject] = doc("by component: its precision plan (tritonize.engines.precision.PrecisionPlan)")
    files: tuple[str, ...] = doc("the files of the torch step's version directory")

    def precisions(self) -> set[str]:
        """The precisions its plans run in (one, when every component runs alike)."""
        return {str(plan["precision"]) for plan in self.plans.values()}


@dataclass(frozen=True, kw_only=True)
class T5Decoding(_Record):
    """The token ids and layer count the T5 decoding loop needs. Triton config parameters are
    strings (:meth:`parameters`); the report and the accuracy gate keep them as ints."""

    pad_token_id: int = doc("the tokenizer's padding id")
    eos_token_id: int = doc("generation stops at this id")
    decoder_start_token_id: int = doc("the first decoder input")
    num_decoder_layers: int = doc("decoder layers, i.e. past key/value pairs per step")

    def ids(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def parameters(self) -> dict[str, str]:
        """As Triton ``config.pbtxt`` parameters, whose values are strings."""
        return {k: str(v) for k, v in self.ids().items()}


@dataclass(frozen=True, kw_only=True)
class DeploymentEntry(_Record):
    """One deployment: what it was built from, the Triton models it wrote and how it validated."""

    task: Task = doc("the Hugging Face pipeline task")
    seed_checkpoint: str = doc("the checkpoint the spec names")
    checkpoint: str = doc("the checkpoint actually built (a demo path with --demo)")
    labels: tuple[str, ...] = doc("the labels, in the order of the model's outputs")
    validation: Validation = doc("the exported FP32 ONNX against PyTorch")
    models: tuple[str, ...] = doc("Triton model directories it owns (removed before it is rebuilt)")
    configs: tuple[str, ...] = doc("their config.pbtxt, relative to the repository")
    demo: DemoCheckpoint | None = doc("with --demo: the demo checkpoint built", None)
    decoding: T5Decoding | None = doc("text2text: the decoding ids (Triton's config carries them as strings)", None)
    runtime: TorchRuntime | None = doc("embedded torch runtime only", None)
    engines: dict[str, EngineEntry] | None = doc("gpu target: by step (Triton model) name", None)
    accuracy_gate: AccuracyGate | None = doc("when a compiled step (engine, INT8, PyTorch) was gated", None)


@dataclass(frozen=True, kw_only=True)
class BuildReport(_Record):
    """``build_report.json``: the build's settings and one :class:`DeploymentEntry` per deployment."""

    report_version: int = doc("the format's version: a reader refuses any other")
    tritonize_version: str = doc("the tritonize that built the repository")
    created: str = doc("when, ISO 8601 in UTC, to the second")
    spec: str = doc("the spec file built from")
    target: Target = doc("where the model steps run: one target per repository")
    dynamic_batching: bool = doc("whether Triton's dynamic batcher is on")
    demo: str | None = doc("the demo size with --demo", None)
    rehearsal: str | None = doc("--rehearse: what the rehearsed gate is and is not", None)
    models: dict[str, DeploymentEntry] = doc("by deployment (entry model) name, in build order")

    @classmethod
    def create(cls, **fields: Any) -> BuildReport:
        """A report of this format and this tritonize, created now (unless ``fields`` say otherwise)."""
        stamp = {"report_version": REPORT_VERSION, "tritonize_version": __version__, "created": _now()}
        return cls(**{**stamp, **fields})

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
    def from_dict(cls, data: Any, where: str = "build report") -> Self:
        """Check ``report_version`` first (a clear message for older and newer reports), then the rest.

        Raises ReportError naming ``where`` (the file, when read from one).
        """
        if not isinstance(data, dict):
            raise ReportError(f"{where}: not a build report (a JSON {type(data).__name__}, not an object)")
        version = data.get("report_version")
        if version is None:
            raise ReportError(
                f"{where}: a build report without report_version (written by tritonize before report_version "
                f"{REPORT_VERSION}); rebuild the repository with `tritonize build`"
            )
        if not isinstance(version, int) or isinstance(version, bool) or version != REPORT_VERSION:
            newer = isinstance(version, int) and version > REPORT_VERSION
            hint = "upgrade tritonize to read it" if newer else "rebuild the repository with `tritonize build`"
            raise ReportError(
                f"{where}: build report version {version!r}, this tritonize {__version__} reads version "
                f"{REPORT_VERSION}: {hint}"
            )
        try:
            return _load(data, cls, "")
        except ReportError as exc:
            raise ReportError(f"{where}: malformed build report: {exc}") from None


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
    return BuildReport.from_dict(data, str(path))


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


@functools.cache
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
            if _required(f) or item != f.default:
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
    return f.default is dataclasses.MISSING


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
                entry["description"] = _plain(tp.__doc__)
            entry["properties"] = {f.name: _described(_schema(hints[f.name], defs), f) for f in fields}
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


def _plain(text: str) -> str:
    """A docstring as one line of plain text (no reStructuredText roles or literals)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return " ".join(text.replace("``", "`").split())


def _described(schema: dict[str, Any], f: dataclasses.Field) -> dict[str, Any]:
    text = f.metadata.get("doc")
    return {"description": _plain(text), **schema} if text else schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``build_report.json``, from the dataclasses above."""
    defs: dict[str, Any] = {}
    _schema(BuildReport, defs)
    root = dict(defs.pop(BuildReport.__name__))
    version = root["properties"]["report_version"]
    root["properties"] = {**root["properties"], "report_version": {"description": version["description"], "const": REPORT_VERSION}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tritonize build report (build_report.json)",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
