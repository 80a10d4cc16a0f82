"""README is a user's front page: short, free of development history, and its links resolve.

The development log it once was lives in git history; facts a user needs live in docs/, and
measured figures on docs/performance.md. These checks keep it from growing back.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_LINES = 250
FORBIDDEN = {
    "an issue number": re.compile(r"issue\s*#?\s*\d+", re.IGNORECASE),
    "a path into a sibling checkout": re.compile(re.escape("../shared")),
    "'this machine' (whose?)": re.compile(r"this machine", re.IGNORECASE),
    "a date (dated results belong on docs/performance.md)": re.compile(r"\b20\d\d-\d\d-\d\d\b"),
}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= MAX_LINES


def test_readme_has_none_of_the_forbidden_strings():
    found = {what: pattern.findall(README) for what, pattern in FORBIDDEN.items()}
    assert {what: hits for what, hits in found.items() if hits} == {}


def test_every_relative_link_in_readme_resolves_to_a_file_in_the_repository():
    targets = [t for t in LINK.findall(README) if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).is_file()]
    assert missing == []


def test_readme_keeps_the_two_commands():
    assert "./demo.sh" in README and "./test.sh" in README
