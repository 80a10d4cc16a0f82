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
