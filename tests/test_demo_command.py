"""`tritonize demo` answers every demo sentence with its expected label, on every deployment, over both protocols."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tritonize.cli import main
from tritonize.demo import demo_labels
from tritonize.demo.sentences import SENTENCES
from tritonize.spec import load_spec

pytestmark = pytest.mark.triton
_HEADER = re.compile(r"^== (HTTP|GRPC) (\S+)$")
_ANSWER = re.compile(r"^  ('.*') -> (\{.*?\})(?:  \(expected \w+\))?$")


def _printed_answers(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(protocol, deployment): {sentence: answer word}} as the demo printed them."""
    answers: dict[tuple[str, str], dict[str, str]] = {}
    section = None
    for line in output.splitlines():
        if header := _HEADER.match(line):
            section = answers.setdefault((header[1], header[2]), {})
        elif (answer := _ANSWER.match(line)) and section is not None:
            result = json.loads(answer[2])
            section[ast.literal_eval(answer[1])] = result.get("label", result.get("generated_text"))
    return answers


def test_demo_prints_the_expected_answer_for_every_sentence_and_deployment(demo_repository: Path, capsys):
    """The session's tiny demo repository is what `tritonize demo` builds (same spec, same size)."""
    assert main(["demo", "--skip-build", "--repository", str(demo_repository)]) == 0
    output = capsys.readouterr().out
    printed = _printed_answers(output)
    models = load_spec().models
    assert set(printed) == {(protocol, m.name) for protocol in ("HTTP", "GRPC") for m in models}
    wrong = [
        f"{protocol} {m.name}: {s.text!r} -> {printed[protocol, m.name].get(s.text)} (expected {s.expected(demo_labels(m))})"
        for protocol in ("HTTP", "GRPC")
        for m in models
        for s in SENTENCES
        if printed[protocol, m.name].get(s.text) != s.expected(demo_labels(m))
    ]
    assert not wrong, "\n".join(wrong)
    total = 2 * len(models) * len(SENTENCES)
    assert f"== {total} of {total} answers as expected" in output


def test_every_demo_sentence_has_one_expected_answer_per_shipped_deployment():
    for model in load_spec().models:
        for sentence in SENTENCES:
            assert sentence.expected(demo_labels(model)) in demo_labels(model), (model.name, sentence.text)
