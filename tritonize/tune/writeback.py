"""Write chosen values back into the spec TOML as a reviewable, minimal edit.

Only the given keys of one ``[[model]]`` table change: a key already there keeps its line, its
indentation and its trailing comment, with the new value; a missing key is added after the
table's last key. Everything else (comments, order, blank lines, other tables) is left byte
for byte, and the result is parsed again as a spec before it is written, so a value the spec
rejects never reaches the file. Values are integers (every key the search sets is one).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from tritonize.errors import TuneError
from tritonize.spec import parse_spec

_TABLE = re.compile(r"^\s*\[")
_MODEL_TABLE = re.compile(r"^\s*\[\[\s*model\s*\]\]\s*(#.*)?$")
_NAME = re.compile(r"""^\s*name\s*=\s*["']([^"']*)["']""")


def _assignment(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)([^#\n]*?)(\s*(#.*)?)$")


def _model_table(lines: list[str], deployment: str) -> tuple[int, int]:
    """[start, end) line range of the ``[[model]]`` table named ``deployment``."""
    starts = [i for i, line in enumerate(lines) if _MODEL_TABLE.match(line)]
    for start in starts:
        end = next((j for j in range(start + 1, len(lines)) if _TABLE.match(lines[j])), len(lines))
        if any((m := _NAME.match(line)) and m.group(1) == deployment for line in lines[start + 1 : end]):
            return start, end
    raise TuneError(f"the spec has no [[model]] table named {deployment!r}")


def edit_spec_text(text: str, deployment: str, values: dict[str, int], source: str = "<spec>") -> str:
    """``text`` with ``values`` set in ``deployment``'s table; raises TuneError (or SpecError) when
    the table is missing or the edited spec is invalid."""
    lines = text.splitlines(keepends=True)
    start, end = _model_table(lines, deployment)
    for key, value in values.items():
        pattern = _assignment(key)
        hits = [i for i in range(start + 1, end) if pattern.match(lines[i].rstrip("\n"))]
        if len(hits) > 1:
            raise TuneError(f"{source}: {deployment}.{key} is set {len(hits)} times")
        if hits:
            i = hits[0]
            newline = "\n" if lines[i].endswith("\n") else ""
            lines[i] = pattern.sub(lambda m, v=value: f"{m.group(1)}{v}{m.group(3)}", lines[i].rstrip("\n")) + newline
            continue
        # after the table's last line of TOML (not its trailing comments, which introduce the next table)
        last = max(i for i in range(start, end) if lines[i].split("#", 1)[0].strip())
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, f"{key} = {value}\n")
        end += 1
    edited = "".join(lines)
    spec = parse_spec(edited, source=source)  # SpecError: the chosen values break a spec rule
    model = spec.get(deployment)
    wrong = {k: model.value(k) for k, v in values.items() if model.value(k) != v}
    if wrong:
        raise TuneError(f"{source}: editing {deployment} did not take: {wrong}")
    return edited


def spec_diff(before: str, after: str, path: str) -> str:
    """A unified diff; ``a/``/``b/`` prefixes (git's) only on a relative path."""
    old, new = (path, path) if Path(path).is_absolute() else (f"a/{path}", f"b/{path}")
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), old, new))


def write_back(spec_path: Path, deployment: str, values: dict[str, int]) -> str:
    """Edit ``spec_path`` in place; returns the unified diff (empty when nothing changed)."""
    try:
        before = spec_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TuneError(f"cannot read the spec {spec_path}: {exc.strerror}") from None
    after = edit_spec_text(before, deployment, values, source=str(spec_path))
    if after != before:
        spec_path.write_text(after, encoding="utf-8")
    return spec_diff(before, after, str(spec_path))
