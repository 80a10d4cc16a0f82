"""The generated reference pages match the code they describe (regenerate: scripts/generate_docs.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("generate_docs", ROOT / "scripts" / "generate_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", sorted(_generator().PAGES))
def test_generated_page_matches_the_code_when_checked_in(page):
    render = _generator().PAGES[page]
    assert (ROOT / page).read_text(encoding="utf-8") == render(), f"{page} is stale: run scripts/generate_docs.py"


def test_spec_reference_names_every_key_a_model_table_accepts():
    from tritonize.spec import MODEL_KEYS

    text = (ROOT / "docs" / "reference" / "spec.md").read_text(encoding="utf-8")
    missing = [key for key in MODEL_KEYS if f"| `{key}` |" not in text]
    assert missing == [], f"spec keys without a documented row: {missing} (give the field a doc)"


def test_cli_reference_names_every_command():
    from tritonize.cli import COMMANDS

    text = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    assert [c for c in COMMANDS if f"## `tritonize {c}`" not in text] == []


def test_performance_page_renders_every_result_with_its_provenance():
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    results = sorted((ROOT / "docs" / "results").glob("*.json"))
    assert results, "docs/results/ holds the measured figures"
    assert [p.name for p in results if f"(results/{p.name})" not in text] == [], "a result is not on the page"
    for row in ("| date |", "| machine |", "| command |", "| tritonize commit |"):
        assert text.count(row) == len(results), f"every result states its {row.strip('| ')}"
    assert "placeholder" not in text.lower()
    assert "have not run on a GPU" in text


def test_performance_page_says_not_recorded_when_a_result_lacks_its_provenance(tmp_path):
    import json

    spec = importlib.util.spec_from_file_location("performance_page", ROOT / "scripts" / "performance_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "bench-bare.json").write_text(json.dumps({"config": {}, "rows": []}), encoding="utf-8")
    text = module.render(tmp_path, "<!-- generated -->")
    assert "| date | not recorded |" in text and "| tritonize commit | not recorded |" in text
