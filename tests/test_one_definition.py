"""Facts with one definition: a second literal copy anywhere in the package fails here.

Ports, protocols, demo sizes, task names, watchdog event kinds and the exit timeout each have
one home (``tritonize/urls.py``, ``tritonize/demo/__init__.py``, ``tritonize/spec.py``,
``tritonize/serving/watchdog.py``, ``tritonize/server.py``). Code elsewhere imports them; this
test reads every module's syntax tree (docstrings and comments are prose and do not count) and
names each literal that repeats one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tritonize
from tritonize.demo import SIZES
from tritonize.serving.watchdog import EventKind, ServerState
from tritonize.spec import Task
from tritonize.urls import DEFAULT_PORTS, PROTOCOLS

PACKAGE = Path(tritonize.__file__).parent
FACTS: dict[str, tuple[object, str]] = {  # literal -> (what it is, the one module allowed to hold it)
    **{port: (f"Triton's default {name} port", "urls.py") for name, port in DEFAULT_PORTS.items()},
    PROTOCOLS: ("the protocols", "urls.py"),
    tuple(reversed(PROTOCOLS)): ("the protocols", "urls.py"),
    SIZES: ("the demo sizes", "demo/__init__.py"),
    tuple(reversed(SIZES)): ("the demo sizes", "demo/__init__.py"),
    **{task.value: ("a task name", "spec.py") for task in Task},
    **{kind.value: ("a watchdog event kind", "serving/watchdog.py") for kind in EventKind},
    **{state.value: ("a server state", "serving/watchdog.py") for state in ServerState},
}
# The same value meaning something else: (module, value) -> what it is there.
NOT_THE_FACT = {("demo/distilbert.py", 8000): "the demo tokenizer's vocabulary size"}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _literals(tree: ast.AST):
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docs and not isinstance(node.value, bool):
            yield node.lineno, node.value
        elif isinstance(node, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Constant) for e in node.elts):
            yield node.lineno, tuple(e.value for e in node.elts)


def _copies() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, value in _literals(ast.parse(path.read_text(encoding="utf-8"))):
            try:
                what, home = FACTS[value]
            except (KeyError, TypeError):  # not a fact, or unhashable
                continue
            if relative != home and (relative, value) not in NOT_THE_FACT:
                found.append(f"tritonize/{relative}:{line}: {value!r} is {what}; import it from tritonize/{home}")
    return found


def test_each_fact_is_written_once_in_the_package():
    assert _copies() == []


def test_the_check_finds_a_second_copy(tmp_path, monkeypatch):
    """The check itself can fail: a module that retypes a port is reported."""
    copy = tmp_path / "tritonize"
    copy.mkdir()
    (copy / "urls.py").write_text("HTTP_PORT = 8000\n")
    (copy / "elsewhere.py").write_text('"""8000 in a docstring is prose."""\nPORT = 8000\nP = ("grpc", "http")\n')
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    assert _copies() == [
        "tritonize/elsewhere.py:2: 8000 is Triton's default http port; import it from tritonize/urls.py",
        "tritonize/elsewhere.py:3: ('grpc', 'http') is the protocols; import it from tritonize/urls.py",
    ]


@pytest.mark.parametrize("module", ["server", "commands.serve"])
def test_exit_timeout_default_is_the_servers(module):
    """``tritonize serve`` and :class:`ServerConfig` share one exit-timeout default."""
    import argparse
    import importlib

    from tritonize.server import DEFAULT_EXIT_TIMEOUT_S, ServerConfig

    if module == "server":
        assert ServerConfig(repository=Path(".")).exit_timeout_s == DEFAULT_EXIT_TIMEOUT_S
    else:
        parser = argparse.ArgumentParser()
        importlib.import_module(f"tritonize.{module}").add_server_arguments(parser)
        assert parser.parse_args([]).exit_timeout_secs == DEFAULT_EXIT_TIMEOUT_S
