"""The documentation site (``mkdocs.yml`` + ``docs/``) builds in strict mode.

Strict mode turns MkDocs' warnings into a failed build; ``mkdocs.yml`` raises the checks that
matter to warnings: a link to a missing page, a link to a missing heading, a page left out of the
nav. The second test proves that configuration bites, on a copy of the site with one of each.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[docs]')"
    ),
]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site`` (never into the source tree)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_docs_site_builds_in_strict_mode_when_every_link_and_page_is_in_place(tmp_path: Path) -> None:
    result = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "troubleshooting" / "index.html").is_file()


def test_strict_build_fails_when_a_link_an_anchor_or_a_nav_entry_is_missing(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "index.md"
    page.write_text(
        page.read_text(encoding="utf-8") + "\n[gone](no-such-page.md) [moved](clients.md#no-such-heading)\n",
        encoding="utf-8",
    )
    (tmp_path / "docs" / "orphan.md").write_text("# Not in the nav\n", encoding="utf-8")

    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "'no-such-page.md', but the target is not found" in output
    assert "does not contain an anchor '#no-such-heading'" in output
    assert "orphan.md" in output and "not included in the \"nav\"" in output
