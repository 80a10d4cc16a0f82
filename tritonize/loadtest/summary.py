"""One load test's result: Locust's client-side view next to Triton's server-side counters.

Client side comes from Locust's ``<prefix>_stats.csv`` (the ``Aggregated`` row); server side is
the statistics delta of the ensemble and of every step (see :mod:`tritonize.loadtest.metrics`).
Written as JSON (for tools) and Markdown (for people).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tritonize.loadtest.gates import GateResult
from tritonize.loadtest.metrics import ModelStats
from tritonize.loadtest.payload import is_refusal
from tritonize.loadtest.resources import LABELS

MODEL_STEP_SUFFIX = "_model"  # the ensemble step that runs the network: <deployment>_model


@dataclass(frozen=True, kw_only=True)
class ClientStats:
    """Locust's aggregate over the whole run (times in milliseconds).

    ``requests`` counts every request sent; ``refusals`` those the server refused as overloaded
    (not failures: the queue bound working); ``failures`` every other error. Latencies are over
    the requests that were not refused (answered or failed), when read from Locust's JSON.
    """

    requests: int
    failures: int
    requests_per_s: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    refusals: int = 0


def _number(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "N/A") else 0.0


def read_locust_csv(stats_csv: Path) -> ClientStats:
    """The ``Aggregated`` row of Locust's ``<prefix>_stats.csv``.

    Locust rewrites this file once a second and not at exit, so it may miss the last second;
    :func:`read_locust_json` reads the final numbers.

    Raises:
        FileNotFoundError: Locust wrote no CSV.
        ValueError: the CSV has no Aggregated row.
    """
    with stats_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    refusals = sum(int(_number(r, "Request Count")) for r in rows if is_refusal(r.get("Type", "")))
    for row in rows:
        if row.get("Name") == "Aggregated":
            return ClientStats(
                requests=int(_number(row, "Request Count")),
                failures=int(_number(row, "Failure Count")) - refusals,
                refusals=refusals,
                requests_per_s=_number(row, "Requests/s"),
                avg_ms=_number(row, "Average Response Time"),
                p50_ms=_number(row, "50%"),
                p95_ms=_number(row, "95%"),
                p99_ms=_number(row, "99%"),
                max_ms=_number(row, "Max Response Time"),
            )
    raise ValueError(f"{stats_csv}: no 'Aggregated' row")


def histogram_percentile(histogram: dict[int, int], total: int, fraction: float) -> float:
    """Locust's percentile over its response-time histogram ``{rounded ms: count}``."""
    if total == 0:
        return 0.0
    wanted = int(total * fraction)
    seen = 0
    for value in sorted(histogram, reverse=True):
        seen += histogram[value]
        if total - seen <= wanted:
            return float(value)
    return 0.0


def read_locust_json(stats_json: Path) -> ClientStats:
    """Aggregate of every entry of Locust's ``--json-file`` output (written at exit: final numbers).

    Raises:
        FileNotFoundError, ValueError: no file, or not Locust's JSON.
    """
    every = json.loads(stats_json.read_text(encoding="utf-8"))
    if not isinstance(every, list):
        raise ValueError(f"{stats_json}: not a Locust stats list")
    entries = [e for e in every if not is_refusal(e.get("method", ""))]
    refusals = sum(int(e["num_requests"]) for e in every if is_refusal(e.get("method", "")))
    requests = sum(int(e["num_requests"]) for e in entries)
    histogram: dict[int, int] = {}
    for entry in entries:
        for value, count in entry["response_times"].items():
            histogram[int(float(value))] = histogram.get(int(float(value)), 0) + int(count)
    starts = [e["start_time"] for e in every if e.get("start_time")]
    ends = [e["last_request_timestamp"] for e in every if e.get("last_request_timestamp")]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    return ClientStats(
        requests=requests + refusals,
        failures=sum(int(e["num_failures"]) for e in entries),
        refusals=refusals,
        requests_per_s=(requests + refusals) / duration if duration > 0 else 0.0,
        avg_ms=sum(e["total_response_time"] for e in entries) / requests if requests else 0.0,
        p50_ms=histogram_percentile(histogram, requests, 0.50),
        p95_ms=histogram_percentile(histogram, requests, 0.95),
        p99_ms=histogram_percentile(histogram, requests, 0.99),
        max_ms=float(max((e["max_response_time"] for e in entries), default=0)),
    )


def read_locust_stats(prefix: Path) -> ClientStats:
    """Final client numbers of a run written with ``--json-file PREFIX --csv PREFIX``."""
    json_path = prefix.with_name(prefix.name + ".json")
    if json_path.exists():
        return read_locust_json(json_path)
    return read_locust_csv(prefix.with_name(prefix.name + "_stats.csv"))


@dataclass(kw_only=True)
class LoadtestSummary:
    """Everything a report needs; ``server`` maps model name -> statistics delta."""

    model: str
    protocol: str
    url: str
    users: int
    spawn_rate: float
    run_time: str
    texts_per_request: int
    client: ClientStats
    server: dict[str, ModelStats] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] | None = None
    files: dict[str, str] = field(default_factory=dict)
    shape: dict[str, Any] | None = None  # the soak plan's phases, when the run had one
    resources: dict[str, Any] | None = None  # see tritonize.loadtest.resources.summarize
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every gate held (a summary without gates passes)."""
        return all(g.passed for g in self.gates)

    @property
    def model_step(self) -> ModelStats | None:
        """The ``<model>_model`` step's delta (where dynamic batching happens), if it ran."""
        return self.server.get(self.model + MODEL_STEP_SUFFIX)

    @property
    def server_requests(self) -> int | None:
        """Successful requests the server counted for the entry-point model during the run."""
        entry = self.server.get(self.model)
        return entry.success_count if entry else None

    def to_dict(self) -> dict[str, Any]:
        step = self.model_step
        entry = self.server.get(self.model)
        return {
            "model": self.model,
            "protocol": self.protocol,
            "url": self.url,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "run_time": self.run_time,
            "texts_per_request": self.texts_per_request,
            "client": asdict(self.client),
            "server_requests": self.server_requests,
            "server_queue_ms_per_request": entry.per_request_ms(entry.queue_ns) if entry else None,
            "server_compute_ms_per_request": step.per_request_ms(step.compute_infer_ns) if step else None,
            "model_step_avg_batch": step.avg_batch if step else None,
            "server": {name: stats.to_dict() for name, stats in sorted(self.server.items())},
            "metrics": self.metrics,
            "shape": self.shape,
            "resources": self.resources,
            "gates": [g.to_dict() for g in self.gates],
            "passed": self.passed,
            "files": self.files,
        }

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write ``summary.json`` and ``summary.md`` into ``out_dir``; return both paths."""
        json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        md_path.write_text(to_markdown(self), encoding="utf-8")
        return json_path, md_path


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _server_rows(summary: LoadtestSummary) -> list[str]:
    rows = [
        "| model | requests | inferences | executions | avg batch | queue ms/req | compute ms/req | total ms/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, stats in sorted(summary.server.items()):
        if not stats.success_count and not stats.fail_count:
            continue
        compute = stats.compute_input_ns + stats.compute_infer_ns + stats.compute_output_ns
        rows.append(
            f"| {name} | {stats.success_count} | {stats.inference_count} | {stats.execution_count} "
            f"| {_fmt(stats.avg_batch, 2)} | {_fmt(stats.per_request_ms(stats.queue_ns), 2)} "
            f"| {_fmt(stats.per_request_ms(compute), 2)} | {_fmt(stats.per_request_ms(stats.success_ns), 2)} |"
        )
    return rows


def _shape_rows(summary: LoadtestSummary) -> list[str]:
    if not summary.shape:
        return []
    rows = ["## Load shape", "", "| phase | from s | to s | users |", "|---|---|---|---|"]
    rows += [f"| {p['name']} | {p['start_s']:g} | {p['end_s']:g} | {p['users']} |" for p in summary.shape["phases"]]
    return [*rows, ""]


def _resource_rows(summary: LoadtestSummary) -> list[str]:
    res = summary.resources
    if not res:
        return []
    rows = [
        f"## Server resources ({res['samples']} samples every {res['interval_s']:g} s, pid {res['server_pid']})",
        "",
        "Memory in MB. Reference and end: medians of the windows after warm-up and at the end of the run.",
        "",
        "| what | before | after | peak | reference | end | growth after warm-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in LABELS.items():
        m = res.get(key)
        if not m:
            continue
        unit = "_mb" if "start_mb" in m else ""
        grown = m.get("after_warmup") or {}
        growth = grown.get(f"growth{unit}")
        ratio = f" ({grown['growth_ratio']:+.1%})" if grown.get("growth_ratio") is not None else ""
        rows.append(
            f"| {label} | {m[f'start{unit}']:g} | {m[f'end{unit}']:g} | {m[f'peak{unit}']:g} "
            f"| {_fmt(grown.get(f'reference{unit}'), 1)} | {_fmt(grown.get(f'end{unit}'), 1)} "
            f"| {'-' if growth is None else f'{growth:+g}'}{ratio} |"
        )
    if res.get("stubs"):
        rows += ["", f"Stub processes: {res['stubs']['start']} before, {res['stubs']['end']} after."]
    if len(res.get("server_pids") or []) > 1:
        rows += ["", f"The server was restarted during the run: pids {res['server_pids']}."]
    return [*rows, ""]


def _gate_rows(summary: LoadtestSummary) -> list[str]:
    if not summary.gates:
        return []
    rows = ["## Gates", "", "| gate | limit | measured | result |", "|---|---|---|---|"]
    rows += [f"| {g.gate} | {g.limit:g} | {g.measured:g} | {'pass' if g.passed else '**FAIL**'} |" for g in summary.gates]
    return [*rows, "", f"Result: {'PASSED' if summary.passed else 'FAILED'}.", ""]


def _load_line(summary: LoadtestSummary) -> str:
    per_request = f"{summary.texts_per_request} text(s) per request."
    if summary.shape:
        peak = max(p["users"] for p in summary.shape["phases"])
        return f"Soak: {summary.shape['total_s']:g} s, up to {peak} users (phases below), {per_request}"
    return f"{summary.users} users (spawn rate {summary.spawn_rate}/s), {summary.run_time}, {per_request}"


def to_markdown(summary: LoadtestSummary) -> str:
    c = summary.client
    step = summary.model_step
    lines = [
        f"# Load test: `{summary.model}` over {summary.protocol.upper()} ({summary.url})",
        "",
        _load_line(summary),
        "",
        "| requests | failures | refused (overloaded) | requests/s | texts/s | avg ms | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {c.requests} | {c.failures} | {c.refusals} | {c.requests_per_s:.1f} "
        f"| {c.requests_per_s * summary.texts_per_request:.1f} "
        f"| {c.avg_ms:.1f} | {c.p50_ms:.0f} | {c.p95_ms:.0f} | {c.p99_ms:.0f} | {c.max_ms:.0f} |",
        "",
        f"Server counted {summary.server_requests if summary.server_requests is not None else '-'} "
        f"successful requests for `{summary.model}`; average batch at the model step: "
        f"{_fmt(step.avg_batch if step else None, 2)}.",
        "",
        "## Server-side time per request (statistics extension, delta over the run)",
        "",
        *_server_rows(summary),
        "",
        *_shape_rows(summary),
        *_resource_rows(summary),
        *_gate_rows(summary),
    ]
    if summary.files:
        lines += ["## Files", "", *(f"- {kind}: `{path}`" for kind, path in summary.files.items()), ""]
    return "\n".join(lines)
