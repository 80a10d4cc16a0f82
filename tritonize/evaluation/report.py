"""The evaluation report: JSON for machines, Markdown for people, a confusion-matrix PNG per head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tritonize.evaluation.metrics import Metrics
from tritonize.evaluation.results import Evaluation

JSON_FILE = "evaluation.json"
MARKDOWN_FILE = "evaluation.md"


def build_report(results: list[Evaluation], dataset: Path) -> dict[str, Any]:
    """Every deployment's scores; with two, a comparison per shared head (accuracy delta = second - first)."""
    report: dict[str, Any] = {
        "dataset": str(dataset),
        "examples": results[0].total,
        "deployments": [r.to_dict() for r in results],
    }
    if len(results) == 2:
        first, second = results
        report["comparison"] = {
            head: {
                "accuracy": [first.heads[head].accuracy, second.heads[head].accuracy],
                "accuracy_delta": second.heads[head].accuracy - first.heads[head].accuracy,
                "macro_f1_delta": second.heads[head].macro_f1 - first.heads[head].macro_f1,
            }
            for head in first.heads
            if head in second.heads
        }
    return report


def _metrics_lines(metrics: Metrics) -> list[str]:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, m in metrics.per_class.items():
        lines.append(f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} |")
    header = "| gold \\ predicted | " + " | ".join(metrics.labels) + " |"
    lines += ["", header, "|---" * (len(metrics.labels) + 1) + "|"]
    lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(metrics.labels, metrics.confusion)]
    return lines


def to_markdown(report: dict[str, Any], results: list[Evaluation]) -> str:
    lines = [f"# tritonize evaluate: {report['dataset']} ({report['examples']} examples)", ""]
    lines += ["| deployment | head | accuracy | macro F1 | p50 ms | p99 ms | texts/request | texts/s |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lat = r.latency()
        for head, m in r.heads.items():
            lines.append(
                f"| {r.target.name} ({r.target.protocol}) | {head} | {m.accuracy:.4f} | {m.macro_f1:.4f} | "
                f"{lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} | {lat['texts_per_request']} | {lat['texts_per_s']:.1f} |"
            )
    for head, c in report.get("comparison", {}).items():
        lines += ["", f"Accuracy delta ({head}, {results[1].target.name} - {results[0].target.name}): "
                  f"{c['accuracy_delta']:+.4f} (macro F1 {c['macro_f1_delta']:+.4f})"]  # fmt: skip
    for r in results:
        for head, m in r.heads.items():
            lines += ["", f"## {r.target.name}: {head}", "", *_metrics_lines(m)]
    return "\n".join(lines) + "\n"


def plot_confusion(metrics: Metrics, title: str, path: Path) -> Path:
    """A confusion-matrix heat map with counts (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.7 * len(metrics.labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(metrics.confusion, cmap="Blues")
    ticks = range(len(metrics.labels))
    ax.set_xticks(ticks, metrics.labels, rotation=45, ha="right")
    ax.set_yticks(ticks, metrics.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    peak = max(max(row) for row in metrics.confusion) or 1
    for i, row in enumerate(metrics.confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], results: list[Evaluation], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, r in enumerate(results):
        for head, metrics in r.heads.items():
            png = out / f"confusion_{index}_{r.target.model}_{head}.png"
            written.append(plot_confusion(metrics, f"{r.target.model} ({head}), accuracy {metrics.accuracy:.3f}", png))
            report["deployments"][index]["heads"][head]["confusion_png"] = str(png)
    (out / JSON_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / MARKDOWN_FILE).write_text(to_markdown(report, results), encoding="utf-8")
    return [out / JSON_FILE, out / MARKDOWN_FILE, *written]
