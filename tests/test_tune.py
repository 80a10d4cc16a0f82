"""`tritonize tune` end to end: the real Model Analyzer starts the bundled tritonserver (local launch),
perf_analyzer measures the tiny classifier, and the summary and the spec write-back follow from it.

A short quick search (two instance counts, one batch size, 1 s perf_analyzer windows, no
concurrency sweep) keeps it near a minute; nothing of Model Analyzer is mocked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from tritonize.cli import main as cli_main
from tritonize.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PERF_ANALYZER = ROOT / ".cache" / "perf-venv" / "bin" / "perf_analyzer"

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def _tools() -> Path:
    pytest.importorskip("model_analyzer", reason="pip install 'tritonize[tune]' (triton-model-analyzer)")
    found = PERF_ANALYZER if PERF_ANALYZER.is_file() else shutil.which("perf_analyzer")
    if not found:
        pytest.skip("perf_analyzer is not installed: bash scripts/install_perf_analyzer.sh")
    return Path(found)


def _snapshot(repository: Path) -> dict[str, str]:
    """Every file of the repository but Python's bytecode caches, which any Triton that loads the
    Python models writes beside them (the session server's included): those are not tune's doing."""
    files = (p for p in sorted(repository.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
    return {str(p.relative_to(repository)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def tuned(classifier_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """One quick search with --write-spec on a copy of the shipped spec: (summary, spec before, spec path, repo snapshots)."""
    perf_analyzer = _tools()
    work = tmp_path_factory.mktemp("tune")
    spec_path = work / "models.toml"
    spec_path.write_text(resources.files("tritonize").joinpath("models.toml").read_text(encoding="utf-8"), encoding="utf-8")
    before = load_spec(spec_path)
    repo_before = _snapshot(classifier_repository)
    args = [
        "tune", "--model", "distilbert_emotion", "--repository", str(classifier_repository), "--spec", str(spec_path),
        "--out", str(work / "out"), "--perf-analyzer", str(perf_analyzer), "--write-spec",
        "--max-instances", "2", "--max-python-batch", "32", "--max-concurrency", "8", "--measurement-ms", "1000",
        "--top-configs", "1", "--no-concurrency-sweep", "--latency-budget-ms", "5000",
    ]  # fmt: skip
    assert cli_main(args) == 0
    summary = json.loads((work / "out" / "summary.json").read_text(encoding="utf-8"))
    return summary, before, spec_path, work / "out", repo_before, _snapshot(classifier_repository)


def test_tune_summary_has_measured_configurations_and_a_chosen_one(tuned):
    summary, *_ = tuned
    configs = {c["name"]: c for c in summary["configs"]}
    assert len(configs) >= 2, "a search measures the shipped configuration and at least one variant"
    assert any(c["shipped"] for c in configs.values())
    for config in configs.values():
        assert config["trials"] and all(t["throughput"] > 0 and t["p99_ms"] > 0 for t in config["trials"])
    assert summary["chosen"] in configs
    chosen = configs[summary["chosen"]]
    assert chosen["best"]["p99_ms"] <= summary["latency_budget_ms"]
    assert chosen["best"]["throughput"] == max(c["best"]["throughput"] for c in configs.values() if c["best"])
    assert set(chosen["values"]) == {"python_instances", "python_max_batch_size", "python_max_queue_delay_us"}


def test_tune_keeps_model_analyzer_reports_and_never_touches_the_repository(tuned):
    _, _, _, out, repo_before, repo_after = tuned
    assert (out / "model_analyzer" / "results" / "metrics-model-inference.csv").is_file()
    assert list((out / "model_analyzer" / "reports").rglob("*.html")), "Model Analyzer's own summary report"
    assert (out / "model_analyzer.yaml").is_file() and (out / "summary.md").is_file()
    assert repo_after == repo_before


def test_write_spec_changes_exactly_the_chosen_keys(tuned):
    summary, before, spec_path, out, *_ = tuned
    after = load_spec(spec_path)
    chosen = {c["name"]: c for c in summary["configs"]}[summary["chosen"]]["values"]
    written = {k: v for k, v in chosen.items() if k in summary["searched_keys"]}
    old, new = before.get("distilbert_emotion"), after.get("distilbert_emotion")
    assert new == dataclasses.replace(old.replace(**written), source=new.source)  # the searched keys take the chosen values...
    assert [m for m in after.models if m.name != old.name] == [dataclasses.replace(m, source=after.source) for m in before.models if m.name != old.name]
    changed = {k for k in written if old.value(k) != written[k]}  # ...and nothing else moves
    diff = (out / "spec.diff").read_text(encoding="utf-8")
    assert {line[1:].split("=")[0].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")} == changed
