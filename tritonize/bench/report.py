"""The bench's Markdown table and JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from tritonize.bench.rows import BenchResult, Load, RowPath


def _what(config: dict) -> str:
    """What was served: the given repository, else the demo size the bench built."""
    return f"repository {config['repository']}" if config.get("repository") else f"{config.get('demo')} demo"


def _cells(row, raw, cpus: int | None) -> list[str]:
    ratio = row.seq_per_s / raw.seq_per_s if raw and raw.seq_per_s and row.key.load is not Load.OPEN_LOOP else None
    efficiency = row.per_cpu_second(cpus)
    return [
        row.path,
        row.setting,
        f"{row.seq_per_s:.1f}",
        "-" if ratio is None else f"{ratio:.2f}",
        "-" if row.p50_ms is None else f"{row.p50_ms:.1f}",
        "-" if row.p99_ms is None else f"{row.p99_ms:.1f}",
        "-" if row.cpu_share is None else f"{row.cpu_share:.0%}",
        "-" if efficiency is None else f"{efficiency:.0f}",
    ]


CEILINGS = (RowPath.RAW_ORT, RowPath.RAW_TORCH_GRAPHS, RowPath.RAW_TORCH)  # the first measured is the ceiling


def _ceiling(result: BenchResult):
    return next((row for path in CEILINGS if (row := result.fastest(path=path)) is not None), None)


def _gpu_lines(result: BenchResult) -> list[str]:
    rows = [(r, uuid, g) for r in result.rows for uuid, g in r.gpu.items()]
    if not rows:
        return []
    lines = ["", "## GPU during the saturation rows (server metrics)", "",
             "| row | GPU | utilisation mean / max % | memory used max / total MiB | samples |", "|---|---|---|---|---|"]  # fmt: skip
    for r, uuid, g in rows:
        lines.append(
            f"| {r.path}, {r.setting} | {uuid} | {g['utilization_mean_pct']} / {g['utilization_max_pct']} "
            f"| {g['memory_used_max_mib']} / {g['memory_total_mib']} | {g['samples']} |"
        )
    return lines


def to_markdown(result: BenchResult) -> str:
    raw = _ceiling(result)
    lines = [
        f"# tritonize bench ({_what(result.config)}, {result.config.get('n_texts')} texts)",
        "",
        f"Ceiling: {f'{raw.path}, {raw.setting}' if raw else '-'}.",
        "",
        "| path | setting | seq/s | vs raw ceiling | p50 ms | p99 ms | CPU share | seq per CPU-s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(_cells(r, raw, result.config.get("cpus"))) + " |" for r in result.rows]
    lines += ["", "## Goals", "", "| goal | target | measured | met | how |", "|---|---|---|---|---|"]
    for g in result.goals:
        sign = ">=" if g["higher_is_better"] else "<="
        measured = "-" if g["measured"] is None else f"{g['measured']:.2f}"
        met = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
        lines.append(f"| {g['goal']} | {sign} {g['target']:g} | {measured} | {met} | {g['detail']} |")
    lines += [
        "",
        f"CPU share: of all {result.config.get('cpus')} CPUs, what this benchmark's processes (client, server, "
        "in-process model) got during the row. A saturating row (concurrency 8/32, batched baselines) well "
        "below 100% was competing with other processes; ratios built on it are not reliable. seq per CPU-s: "
        "seq/s divided by the CPU those processes got, comparable across contended rows.",
    ]
    steps = [(r, name, s) for r in result.rows for name, s in r.server.items()]
    if steps:
        lines += ["", "## Server steps during the saturation rows", "", "| row | step | executions | rows/execute "
                  "| compute ms/execute |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {r.path}, {r.setting} | {name} | {s['executions']} | {s['avg_batch']} | {s['compute_ms_per_execute']} |"
            for r, name, s in steps
        ]
    lines += _gpu_lines(result)
    refusals = [f"{r.path}, {r.setting}: the server refused {r.refused} requests (full queue); p50/p99 are of the "
                f"{r.texts // max(1, r.key.texts_per_request)} answered" for r in result.rows if r.refused]  # fmt: skip
    notes = [*refusals, *result.notes]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def write_result(result: BenchResult, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(result), encoding="utf-8")
    return json_path, md_path
