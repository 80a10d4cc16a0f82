"""`tritonize tune --write-spec`: only the chosen keys of one deployment's table change; comments,
layout and every other table are kept; a value the spec rejects never reaches the file."""

from __future__ import annotations

from importlib import resources

import pytest

from tritonize.errors import SpecError, TuneError
from tritonize.spec import parse_spec
from tritonize.tune.writeback import edit_spec_text, write_back

SPEC = """\
# header comment
[[model]]
name = "a"
checkpoint = "x"
task = "text-classification"
demo = "distilbert"
max_batch_size = 32
python_instances = 2  # measured: keep this comment

# between the tables
[[model]]
name = "b"
checkpoint = "y"
task = "text-classification"
demo = "distilbert"
python_instances = 1

[server]
queue_time_target_us = 20000
"""


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    return [(old, new) for old, new in zip(before.splitlines(), after.splitlines()) if old != new]


def test_existing_key_keeps_its_line_and_comment_and_nothing_else_changes():
    after = edit_spec_text(SPEC, "a", {"python_instances": 1})
    assert _changed_lines(SPEC, after) == [("python_instances = 2  # measured: keep this comment", "python_instances = 1  # measured: keep this comment")]


def test_missing_key_is_added_inside_its_own_table_before_the_trailing_comments():
    after = edit_spec_text(SPEC, "a", {"python_max_batch_size": 128})
    lines = after.splitlines()
    assert lines.index("python_max_batch_size = 128") == lines.index("python_instances = 2  # measured: keep this comment") + 1
    assert len(lines) == len(SPEC.splitlines()) + 1
    spec = parse_spec(after)
    assert spec.get("a").python.python_max_batch_size == 128 and spec.get("b") == parse_spec(SPEC).get("b")


def test_only_the_named_deployment_changes_when_both_have_the_key():
    after = edit_spec_text(SPEC, "b", {"python_instances": 3})
    before, edited = parse_spec(SPEC), parse_spec(after)
    assert edited.get("a") == before.get("a")
    assert edited.get("b") == before.get("b").replace(python_instances=3)


def test_value_breaking_a_spec_rule_is_refused():
    with pytest.raises(SpecError, match="python_max_batch_size"):
        edit_spec_text(SPEC, "a", {"python_max_batch_size": 16})  # below max_batch_size 32


def test_unknown_deployment_is_refused():
    with pytest.raises(TuneError, match="'c'"):
        edit_spec_text(SPEC, "c", {"python_instances": 1})


def test_write_back_edits_the_file_and_returns_a_diff_of_exactly_those_keys(tmp_path):
    path = tmp_path / "models.toml"
    shipped = resources.files("tritonize").joinpath("models.toml").read_text(encoding="utf-8")
    path.write_text(shipped, encoding="utf-8")
    diff = write_back(path, "distilbert_emotion", {"python_instances": 1, "python_max_queue_delay_us": 500})
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert removed == ["-python_instances = 2"]
    assert sorted(added) == ["+python_instances = 1", "+python_max_queue_delay_us = 500"]
    assert write_back(path, "distilbert_emotion", {"python_instances": 1}) == ""  # unchanged: no diff, file as it was
