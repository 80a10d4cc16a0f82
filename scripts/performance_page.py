"""Render ``docs/performance.md`` from the JSON results in ``docs/results/``.

Measured figures live in one place, the JSON a run wrote; this page is rendered from it, never
retyped, so a figure on the page is the figure the run recorded. Each table states when, where,
with which command and from which commit it was measured, read from the JSON; a JSON that lacks
one of them says "not recorded" rather than the page guessing. ``scripts/generate_docs.py``
writes the page and ``tests/test_docs_generated.py`` fails when the checked-in page is stale.

Results by file name: ``bench-*.json`` (``tritonize bench``), ``gpu-anchors-*.json`` (figures
measured on a GPU machine), ``soak-*.json`` (``scripts/soak.py``), ``tune-*.json`` (``tritonize
tune`` summaries and the bench that compared a tuned build with the shipped one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NOT_RECORDED = "not recorded"


# --- provenance: the same four facts, from each kind of JSON ------------------------------------


def _machine_text(machine: Any) -> str:
    """One line: CPU model and SIMD flags, cores, GPUs; a plain string (older JSON) as written."""
    if machine is None:
        return NOT_RECORDED
    if isinstance(machine, str):
        return f"{machine}; SIMD flags {NOT_RECORDED}; GPU {NOT_RECORDED}"
    flags = machine.get("simd_flags")
    gpus = machine.get("gpus")
    parts = [
        f"CPU {machine.get('cpu_model') or NOT_RECORDED}",
        f"SIMD flags {' '.join(flags) if flags else NOT_RECORDED if flags is None else 'none of those checked'}",
        f"{machine.get('cpus') or NOT_RECORDED} cores",
        f"GPU {', '.join(gpus) if gpus else 'none' if gpus == [] else NOT_RECORDED}",
    ]
    labels = {"memory_gib": "memory GiB", "python": "Python", "software": "software", "shared": "note"}
    parts += [f"{label}: {machine[key]}" for key, label in labels.items() if machine.get(key)]
    return "; ".join(parts)


def _commit_text(git: dict | None) -> str:
    if git and not git.get("commit") and git.get("note"):
        return str(git["note"])
    if not git or not git.get("commit"):
        return NOT_RECORDED
    return f"`{git['commit'][:12]}`" + (" (with uncommitted changes)" if git.get("dirty") else "")


def provenance(kind: str, data: dict) -> dict[str, str]:
    """Date, machine, command and commit of one result, as text ("not recorded" where absent)."""
    if kind == "soak":
        commands = data.get("commands", {})
        command = "<br>".join(f"`{c}`" for c in (commands.get("script"), commands.get("serve"), commands.get("loadtest")) if c)
        return {
            "date": f"{data.get('started_utc', NOT_RECORDED)} to {data.get('finished_utc', NOT_RECORDED)}",
            "machine": _machine_text(data.get("machine")),
            "command": command or NOT_RECORDED,
            "commit": _commit_text(data.get("git")),
        }
    if "context" in data:  # a tune summary
        context = data["context"]
        return {
            "date": context.get("date", NOT_RECORDED),
            "machine": _machine_text(context.get("machine")),
            "command": f"`{data['command']}`" if data.get("command") else NOT_RECORDED,
            "commit": _commit_text(data.get("git")),
        }
    found = data.get("provenance", {})
    command = found.get("command") or data.get("command")
    text = f"`{command}`" if command else NOT_RECORDED
    if found.get("measured_with"):
        text += f" ({found['measured_with']})"
    return {
        "date": found.get("date_utc", NOT_RECORDED),
        "machine": _machine_text(found.get("machine")),
        "command": text,
        "commit": _commit_text(found.get("git")),
    }


def _provenance_table(kind: str, data: dict, source: str) -> list[str]:
    p = provenance(kind, data)
    return [
        "| | |",
        "|---|---|",
        f"| date | {p['date']} |",
        f"| machine | {p['machine']} |",
        f"| command | {p['command']} |",
        f"| tritonize commit | {p['commit']} |",
        f"| source | [`{source}`](results/{source}) |",
        "",
    ]


# --- the tables ----------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def _rows_table(rows: list[dict]) -> list[str]:
    lines = ["| path | setting | seq/s | p50 ms | p99 ms | CPU share |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        share = "-" if r.get("cpu_share") is None else f"{r['cpu_share']:.0%}"
        lines.append(
            f"| {r['path']} | {r['setting']} | {_num(r.get('seq_per_s'))} | {_num(r.get('p50_ms'))} "
            f"| {_num(r.get('p99_ms'))} | {share} |"
        )
    return [*lines, ""]


def _goals_table(goals: list[dict]) -> list[str]:
    if not goals:
        return []
    lines = ["| goal | target | measured | met |", "|---|---|---:|---|"]
    for g in goals:
        sign = ">=" if g["higher_is_better"] else "<="
        met = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
        lines.append(f"| {g['goal']} | {sign} {g['target']:g} | {_num(g['measured'], '.2f')} | {met} |")
    return [*lines, ""]


def _notes(notes: list[str]) -> list[str]:
    return [*(f"- {n}" for n in notes), ""] if notes else []


def bench_section(name: str, data: dict) -> list[str]:
    config = data.get("config", {})
    what = f"repository {config['repository']}" if config.get("repository") else f"{config.get('demo')} demo"
    title = f"### {what}, {config.get('n_texts', '?')} texts, best of {config.get('passes', '?')} passes"
    return [
        title,
        "",
        *_provenance_table("bench", data, name),
        "Each row is the best of the run's passes; CPU share is what the benchmark's own processes got of",
        "all cores during the row (well below 100 % at saturation: other work competed).",
        "",
        *_rows_table(data.get("rows", [])),
        *_goals_table(data.get("goals", [])),
        *_notes(data.get("notes", [])),
    ]


def gpu_section(name: str, data: dict) -> list[str]:
    lines = ["| measurement | figure |", "|---|---:|"]
    lines += [f"| {f['measurement']} | {f['value']} {f['unit']} |" for f in data.get("figures", [])]
    return [
        f"### {data['provenance']['machine'].get('gpus', ['GPU'])[0]}",
        "",
        data.get("what", "").rstrip(".") + ".",
        "",
        *_provenance_table("gpu", data, name),
        *lines,
        "",
        *([data["not_run"], ""] if data.get("not_run") else []),
    ]


def _growth(entry: dict) -> str:
    g = entry["after_warmup"]
    return f"{g['reference_mb']:.1f} -> {g['end_mb']:.1f} ({g['growth_ratio']:+.1%})"


def soak_section(name: str, data: dict) -> list[str]:
    s = data["summary"]
    c, r = s["client"], s["resources"]
    hold = next(p for p in s["shape"]["phases"] if p["name"] == "hold")
    verdict = "passed every gate" if data.get("passed") else "**FAILED** (see the gates below)"
    gates = ["| gate | limit | measured | held |", "|---|---:|---:|---|"]
    gates += [
        f"| {g['gate']} | {g['limit']:g} | {g['measured']:g} | {'yes' if g['passed'] else '**no**'} |"
        for g in s.get("gates", [])
    ]
    plots = data.get("plots") or {}
    return [
        f"### {data['deployment']}: {verdict}",
        "",
        *_provenance_table("soak", data, name),
        f"{(hold['end_s'] - hold['start_s']) / 60:g} minutes held at {hold['users']} users ({s['protocol']}, "
        f"{s['texts_per_request']} text per request), then the spike and the recovery. Load average during "
        f"the run (1 min, median): {data['load_average_1m']['median']}.",
        "",
        "| requests | failed | refused | req/s | p50 ms | p99 ms | tritonserver RSS MB (after warm-up -> end) "
        "| stubs RSS MB | server /dev/shm MB |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|",
        f"| {c['requests']} | {c['failures']} | {c.get('refusals', 0)} | {c['requests_per_s']:.1f} | {c['p50_ms']:.0f} "
        f"| {c['p99_ms']:.0f} | {_growth(r['server_rss'])} | {_growth(r['stubs_rss'])} | {_growth(r['server_shm'])} |",
        "",
        *gates,
        "",
        *[f"![{data['deployment']} {k}](results/{v})" for k, v in plots.items()],
        "",
    ]


def tune_section(name: str, data: dict) -> list[str]:
    if "configs" not in data:  # the bench run that compared a tuned build with the shipped one
        return [
            f"### Shipped against tuned: `{name}`",
            "",
            *_provenance_table("tune", data, name),
            *_rows_table(data.get("rows", [])),
            *_notes(data.get("notes", [])),
        ]
    keys = data.get("searched_keys", [])
    lines = [f"| configuration | {' | '.join(keys)} | best within {data['latency_budget_ms']:g} ms p99 |",
             "|---|" + "---:|" * len(keys) + "---|"]  # fmt: skip
    for config in data["configs"]:
        best = config.get("best")
        shown = f"{best['throughput']} texts/s, p99 {best['p99_ms']} ms (concurrency {best['concurrency']})" if best else "none"
        label = config["name"] + (" (chosen)" if config["name"] == data.get("chosen") else "")
        label += " (shipped)" if config.get("shipped") else ""
        lines.append(f"| {label} | {' | '.join(str(config['values'].get(k, '-')) for k in keys)} | {shown} |")
    context = data.get("context", {})
    return [
        f"### Model Analyzer search: {data['deployment']}, {data['target']} target ({data['mode']} mode)",
        "",
        *_provenance_table("tune", data, name),
        f"Model Analyzer {context.get('model_analyzer', NOT_RECORDED)}, {context.get('perf_analyzer', NOT_RECORDED)}; "
        f"{context.get('protocol', '?')}, windows of {context.get('measurement_interval_ms', '?')} ms, concurrency up to "
        f"{context.get('max_concurrency', '?')}; load average {context.get('load_average_start', '?')} at the start, "
        f"{context.get('load_average_end', '?')} at the end.",
        "",
        *lines,
        "",
    ]


# --- the page ------------------------------------------------------------------------------------

SECTIONS = (  # (file pattern, heading, introduction, renderer)
    ("bench-*.json", "Benchmarks", "`tritonize bench` runs ([Benchmarks](benchmarks.md) says what each row measures).",
     bench_section),
    ("gpu-anchors-*.json", "GPU anchors", "Figures measured on a GPU machine around the model, without TensorRT.",
     gpu_section),
    ("soak-*.json", "Soaks", "Long load tests with gates on failures and on growth of memory, descriptors and threads "
     "([Soak](soak.md) defines the gates).", soak_section),
    ("tune-*.json", "Tuning", "Model Analyzer searches and the bench that checked their choice "
     "([Tuning](tuning.md) describes the procedure).", tune_section),
)  # fmt: skip


def render(results: Path, generated_note: str) -> str:
    """The whole page from every result in ``results`` (sorted by file name within each section)."""
    lines = [
        "# Performance",
        "",
        generated_note,
        "",
        "Every figure on this page is rendered from a JSON file in `docs/results/`, which the run",
        "that measured it wrote (regenerate the page with `scripts/generate_docs.py`). Each table",
        "states its date, machine, exact command and tritonize commit as recorded in that file;",
        f'"{NOT_RECORDED}" means the file does not say.',
        "",
        "!!! warning \"Not run on a GPU\"",
        "    The `gpu` target and its TensorRT engines have not run on a GPU: TensorRT installs",
        "    nowhere this project has run. `tritonize build --target gpu --rehearse` runs the engine",
        "    plans in ONNX Runtime instead, which checks the plans but measures nothing about TensorRT.",
        "    The GPU figures below are PyTorch and the served path around the model, not engines.",
        "",
        "Most CPU figures come from 2-core machines shared with other jobs (see each table's load",
        "average or CPU share): compare rows within one table, not across tables.",
        "",
    ]
    for pattern, heading, intro, section in SECTIONS:
        files = sorted(results.glob(pattern))
        lines += [f"## {heading}", "", intro, ""]
        if not files:
            lines += ["Not run: no result file.", ""]
        for path in files:
            lines += section(path.name, json.loads(path.read_text(encoding="utf-8")))
    return "\n".join(lines).rstrip() + "\n"
