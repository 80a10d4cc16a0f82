"""Rows of the bench table: a typed key per measurement, and what was measured under it.

Goals and reports find rows by their :class:`RowKey` (path, load, level, protocol, ...), never
by the display strings, which are derived from the key in one place (:meth:`RowKey.path_text`,
:meth:`RowKey.setting_text`).
"""

from __future__ import annotations

import enum
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tritonize.percentiles import percentile

PROTOCOL_NAMES = {"grpc": "gRPC", "http": "HTTP"}


class RowPath(str, enum.Enum):
    """What did the work: the served deployment or an in-process baseline."""

    SERVED = "served"
    SERVED_INT8 = "served INT8"
    SERVED_COMPARED = "served, --compare repository"  # another build of the same deployment (a tuned config)
    NO_DYNAMIC_BATCHING = "no dyn. batching"
    RAW_ORT = "raw ONNX Runtime"
    RAW_ORT_INT8 = "raw ONNX Runtime INT8"
    HF_PIPELINE = "HF pipeline"
    HF_GENERATE = "HF generate"
    TOKENIZER = "tokenizer alone"
    IN_PROCESS = "tokenizer + ORT in-process"
    RAW_TORCH = "raw PyTorch"  # the served torch step's own runner, in-process, pre-tokenized
    RAW_TORCH_GRAPHS = "raw PyTorch + CUDA graphs"


class Load(str, enum.Enum):
    """How it was loaded: ``level`` is the requests in flight, or the rows per in-process call."""

    CONCURRENCY = "concurrency"  # closed loop, one client process
    SATURATION = "saturation"  # closed loop from several client processes
    OPEN_LOOP = "open loop"  # fixed arrival rate; the rate is a measured value, not part of the key
    BATCH = "batch"  # in-process calls of ``level`` rows


@dataclass(frozen=True, kw_only=True)
class RowKey:
    """Identity of a row across passes."""

    path: RowPath
    load: Load
    level: int = 0
    protocol: str | None = None
    generative: bool = False  # a text2text deployment (T5) rather than the classifier
    texts_per_request: int = 1
    sorted_by_length: bool = False

    def path_text(self, deployment: str | None = None) -> str:
        parts = [self.path.value]
        if self.protocol:
            parts.append(PROTOCOL_NAMES[self.protocol])
        if self.generative and deployment:
            parts.append(deployment)
        return " ".join(parts)

    def setting_text(self, rate: float | None = None) -> str:
        texts = f", {self.texts_per_request} texts/request" if self.texts_per_request > 1 else ""
        if self.load is Load.OPEN_LOOP:
            return f"open loop {rate or 0:.1f} req/s{texts}"
        if self.load is Load.BATCH:
            unpadded = self.level == 1 and self.path in (RowPath.RAW_ORT, RowPath.RAW_ORT_INT8)
            extra = ", sorted by length" if self.sorted_by_length else (", unpadded" if unpadded else "")
            return f"batch {self.level}{extra}"
        return f"{self.load.value} {self.level}{texts}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": self.path.value, "load": self.load.value}


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One row: ``texts`` sequences done in ``seconds``; latencies per request (or call) in ms."""

    key: RowKey
    texts: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    rate: float | None = None  # open loop: requests per second sent
    deployment: str | None = None
    pass_index: int = 0
    cpu_share: float | None = None  # share of all CPUs this benchmark's processes got (see OwnCpu)
    server: dict[str, Any] = field(default_factory=dict)  # per-step statistics, where read
    gpu: dict[str, Any] = field(default_factory=dict)  # per GPU: utilization and memory from the server's metrics
    refused: int = 0  # open loop: requests the server refused (full queue), not in the latencies

    @property
    def path(self) -> str:
        return self.key.path_text(self.deployment)

    @property
    def setting(self) -> str:
        return self.key.setting_text(self.rate)

    @property
    def seq_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0

    def per_cpu_second(self, cpus: int | None) -> float | None:
        """Texts per CPU-second of the benchmark's own processes: throughput divided by the CPU this
        work actually got, an efficiency that contention from other jobs distorts far less than seq/s."""
        if not self.cpu_share or not cpus:
            return None
        return self.seq_per_s / (self.cpu_share * cpus)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = self.key.to_dict()
        return {**out, "path": self.path, "setting": self.setting, "seq_per_s": self.seq_per_s}


def latency_fields(latencies_s: list[float]) -> dict[str, float | None]:
    """``p50_ms`` / ``p99_ms`` of per-request latencies in seconds (``None`` when there are none)."""
    ms = [x * 1000 for x in latencies_s]
    return {"p50_ms": statistics.median(ms) if ms else None, "p99_ms": percentile(ms, 99) if ms else None}


def best_rows(rows: list[Measurement]) -> list[Measurement]:
    """One row per key, its best pass: highest throughput; for open loop, lowest p99.

    On a shared machine other work only ever slows a measurement down, so the best pass is
    the closest to what the code can do.
    """
    best: dict[RowKey, Measurement] = {}
    for row in rows:
        current = best.get(row.key)
        if row.key.load is Load.OPEN_LOOP:
            better = current is None or (row.p99_ms or float("inf")) < (current.p99_ms or float("inf"))
        else:
            better = current is None or row.seq_per_s > current.seq_per_s
        if better:
            best[row.key] = row
    return list(best.values())


@dataclass(kw_only=True)
class BenchResult:
    config: dict[str, Any]
    rows: list[Measurement] = field(default_factory=list)
    all_rows: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # date, machine, command, commit

    def find(self, **fields: Any) -> Measurement | None:
        """The row whose key has all these field values (``find(path=RowPath.SERVED, level=1, ...)``)."""
        return next((r for r in self.rows if all(getattr(r.key, k) == v for k, v in fields.items())), None)

    def select(self, **fields: Any) -> list[Measurement]:
        return [r for r in self.rows if all(getattr(r.key, k) == v for k, v in fields.items())]

    def fastest(self, **fields: Any) -> Measurement | None:
        rows = [r for r in self.select(**fields) if r.key.load is not Load.OPEN_LOOP]
        return max(rows, key=lambda r: r.seq_per_s) if rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provenance": self.provenance,
            "config": self.config,
            "rows": [r.to_dict() for r in self.rows],
            "goals": self.goals,
            "notes": self.notes,
            "all_passes": [r.to_dict() for r in self.all_rows],
        }
