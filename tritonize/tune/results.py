"""Model Analyzer's results read back: every configuration tried, and the one chosen.

Sources are Model Analyzer's own outputs, not its internal state: the inference table it exports
(``<export_path>/results/metrics-model-inference.csv``, one row per configuration and
concurrency, best first, with its ``Satisfies Constraints`` verdict) and each variant's
``config.pbtxt`` in its output model repository, parsed with Triton's protobuf. The values of
the searched fields are mapped back to spec keys through the :class:`SearchSpace`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tritonize.errors import TuneError
from tritonize.tune.space import SearchSpace, StepSearch

INFERENCE_CSV = Path("results") / "metrics-model-inference.csv"
DEFAULT_SUFFIX = "_config_default"  # Model Analyzer's name for the configuration as found in the repository
COLUMNS = {
    "config": "Model Config Path",
    "concurrency": "Concurrency",
    "satisfies": "Satisfies Constraints",
    "throughput": "Throughput (infer/sec)",
    "p99_ms": "p99 Latency (ms)",
}


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One perf_analyzer measurement: a configuration at one concurrency."""

    concurrency: int
    throughput: float  # inferences (texts) per second
    p99_ms: float
    satisfies: bool  # Model Analyzer's verdict against the constraints (the latency budget)


@dataclass(frozen=True, kw_only=True)
class TriedConfig:
    """A configuration Model Analyzer measured, with the spec values it stands for."""

    name: str
    variants: tuple[str, ...]  # the step models' variant names in the output model repository
    values: dict[str, int]  # spec key -> value of that key in this configuration
    trials: tuple[Trial, ...]

    @property
    def is_shipped(self) -> bool:
        """The repository's own configuration, as the spec built it."""
        return self.name.endswith(DEFAULT_SUFFIX)

    def best(self, budget_ms: float | None) -> Trial | None:
        """The highest-throughput trial within the budget (and Model Analyzer's constraints)."""
        passing = [t for t in self.trials if t.satisfies and (budget_ms is None or t.p99_ms <= budget_ms)]
        return max(passing, key=lambda t: t.throughput, default=None)


@dataclass(frozen=True, kw_only=True)
class TuneSummary:
    """What one ``tritonize tune`` run found; ``chosen`` is None when nothing met the budget."""

    deployment: str
    target: str
    mode: str
    latency_budget_ms: float | None
    searched_keys: tuple[str, ...]
    configs: tuple[TriedConfig, ...]
    chosen: str | None
    context: dict[str, Any] = field(default_factory=dict)
    command: str | None = None  # as typed (tritonize.provenance): the page of results cites it
    git: dict[str, Any] = field(default_factory=dict)  # the tritonize commit the search ran

    def config(self, name: str) -> TriedConfig:
        for tried in self.configs:
            if tried.name == name:
                return tried
        raise TuneError(f"no configuration {name!r} in the summary")

    @property
    def shipped(self) -> TriedConfig | None:
        return next((c for c in self.configs if c.is_shipped), None)

    @property
    def chosen_values(self) -> dict[str, int]:
        """The searched keys' values in the chosen configuration (empty when none was chosen)."""
        if self.chosen is None:
            return {}
        values = self.config(self.chosen).values
        return {key: values[key] for key in self.searched_keys if key in values}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for tried, entry in zip(self.configs, out["configs"]):
            best = tried.best(self.latency_budget_ms)
            entry["shipped"] = tried.is_shipped
            entry["best"] = asdict(best) if best else None
        return out


def read_trials(csv_path: Path) -> dict[str, list[Trial]]:
    """Model Analyzer's inference table: the configuration path column -> its trials.

    Raises:
        TuneError: the table is missing (Model Analyzer measured nothing) or lacks a column.
    """
    if not csv_path.is_file():
        raise TuneError(f"Model Analyzer wrote no results table ({csv_path}): no configuration was measured")
    trials: dict[str, list[Trial]] = {}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            missing = [c for c in COLUMNS.values() if c not in row]
            if missing:
                raise TuneError(f"{csv_path} has no column {missing[0]!r}; columns: {list(row)}")
            trial = Trial(
                concurrency=int(row[COLUMNS["concurrency"]]),
                throughput=float(row[COLUMNS["throughput"]]),
                p99_ms=float(row[COLUMNS["p99_ms"]]),
                satisfies=row[COLUMNS["satisfies"]].strip().lower() == "yes",
            )
            trials.setdefault(row[COLUMNS["config"]].strip(), []).append(trial)
    return trials


def split_config_path(path: str) -> tuple[str, tuple[str, ...]]:
    """``ens_config_0: step_config_0, other_config_1`` -> (``ens_config_0``, step variants);
    a plain ``step_config_3`` (brute mode) is its own single variant."""
    top, _, composing = path.partition(":")
    variants = tuple(v.strip() for v in composing.split(",") if v.strip())
    return top.strip(), variants or (top.strip(),)


def step_values(step: StepSearch, config: Any) -> dict[str, int]:
    """Spec key -> value of ``step``'s keyed dimensions in a parsed ``config.pbtxt`` (``ModelConfig``)."""
    found = {
        "instance_count": sum(group.count for group in config.instance_group) or 1,
        "max_batch_size": config.max_batch_size,
        "max_queue_delay_us": config.dynamic_batching.max_queue_delay_microseconds,
    }
    preferred = list(config.dynamic_batching.preferred_batch_size)
    if preferred:
        found["opt_batch_size"] = min(preferred)
    return {key: int(found[dim]) for dim, key in step.keys.items() if dim in found}


def _variant_step(space: SearchSpace, variant: str) -> StepSearch | None:
    """The searched step a variant name (``<step>_config_<n>`` / ``_config_default``) belongs to."""
    for step in space.steps:
        if variant.startswith(f"{step.model}_config_"):
            return step
    return None


def config_values(space: SearchSpace, variants_dir: Path, variants: tuple[str, ...]) -> dict[str, int]:
    """The spec values one configuration stands for, read from its variants' ``config.pbtxt``."""
    from tritonize.repository.triton_config import parse_pbtxt

    values: dict[str, int] = {}
    for variant in variants:
        step = _variant_step(space, variant)
        if step is None or not step.keys:
            continue
        path = variants_dir / variant / "config.pbtxt"
        if not path.is_file():
            raise TuneError(f"Model Analyzer's variant {variant} has no {path}")
        values.update(step_values(step, parse_pbtxt(path.read_text(encoding="utf-8"))))
    return values


def summarize(
    space: SearchSpace, export_dir: Path, variants_dir: Path, budget_ms: float | None, context: dict[str, Any]
) -> TuneSummary:
    """Every configuration in Model Analyzer's table, and the fastest within the budget."""
    configs = []
    for path, trials in read_trials(export_dir / INFERENCE_CSV).items():
        name, variants = split_config_path(path)
        configs.append(
            TriedConfig(name=name, variants=variants, values=config_values(space, variants_dir, variants), trials=tuple(trials))
        )
    ranked = [(best.throughput, c.name) for c in configs if (best := c.best(budget_ms)) is not None]
    return TuneSummary(
        deployment=space.deployment,
        target=space.target.value,
        mode=space.mode.value,
        latency_budget_ms=budget_ms,
        searched_keys=space.spec_keys,
        configs=tuple(configs),
        chosen=max(ranked)[1] if ranked else None,
        context=context,
    )


def _values_text(values: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def to_markdown(summary: TuneSummary) -> str:
    """The summary as a Markdown table: each configuration's best trial within the budget."""
    budget = f"p99 <= {summary.latency_budget_ms:g} ms" if summary.latency_budget_ms is not None else "no latency budget"
    lines = [
        f"# tritonize tune: {summary.deployment} ({summary.target}, {summary.mode} search, {budget})",
        "",
        "| configuration | spec values | best concurrency | throughput (texts/s) | p99 (ms) | trials |",
        "|---|---|---:|---:|---:|---:|",
    ]
    def rank(tried: TriedConfig) -> float:
        best = tried.best(summary.latency_budget_ms)
        return best.throughput if best else -1.0

    for tried in sorted(summary.configs, key=rank, reverse=True):
        best = tried.best(summary.latency_budget_ms)
        marks = " (chosen)" if tried.name == summary.chosen else ""
        marks += " (shipped)" if tried.is_shipped else ""
        cells = (f"{best.concurrency}", f"{best.throughput:.1f}", f"{best.p99_ms:.1f}") if best else ("-", "none within budget", "-")
        lines.append(f"| {tried.name}{marks} | {_values_text(tried.values)} | {' | '.join(cells)} | {len(tried.trials)} |")
    lines.append("")
    if summary.chosen is None:
        lines.append(f"No configuration met {budget}.")
    else:
        lines.append(f"Chosen: {summary.chosen}: {_values_text(summary.chosen_values) or 'the shipped values'}.")
    for key, value in summary.context.items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def write_summary(summary: TuneSummary, out: Path) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.md`` in ``out``."""
    json_path, md_path = out / "summary.json", out / "summary.md"
    json_path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(summary), encoding="utf-8")
    return json_path, md_path
