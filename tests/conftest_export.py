"""Shared, cached builders for the demo/export tests (imported by tests/test_demo_* and test_export_*).

Plain cached functions rather than fixtures: a fixture imported into several modules would be
built once per module; these build each tiny checkpoint once per test session.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from tritonize.spec import ModelSpec, Task


@functools.cache
def _root() -> Path:
    """One scratch directory per test session, made when a test first needs it (not at import)."""
    root = Path(tempfile.mkdtemp(prefix="tritonize-test-export-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root

DEMO_TASKS = {"distilbert": Task.TEXT_CLASSIFICATION}


def scratch_dir(name: str) -> Path:
    path = _root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_spec(demo: str, labels: tuple[str, ...] = (), **kwargs) -> ModelSpec:
    task = DEMO_TASKS.get(demo, Task.TEXT2TEXT_GENERATION)
    return ModelSpec(
        name=f"test_{demo.replace('-', '_')}", checkpoint="unused", task=task, demo=demo, labels=labels, **kwargs
    )


@functools.cache
def tiny_checkpoint(demo: str, labels: tuple[str, ...] = ()) -> Path:
    """A tiny demo checkpoint built once per session."""
    from tritonize.demo import make_demo_checkpoint

    key = "-".join((demo, *labels))
    return make_demo_checkpoint(demo_spec(demo, labels), "tiny", _root() / "checkpoints" / key)


def shipped_spec(demo: str) -> ModelSpec:
    """The deployment of ``tritonize/models.toml`` whose demo architecture is ``demo``."""
    from tritonize.spec import load_spec

    return next(m for m in load_spec().models if m.demo == demo)


@functools.cache
def tiny_t5(demo: str) -> Path:
    """Tiny T5 demo checkpoint with the shipped spec's labels, built once per session."""
    return tiny_checkpoint(demo, shipped_spec(demo).labels)


@functools.cache
def tiny_t5_export(demo: str):
    """The three ONNX graphs of :func:`tiny_t5`, exported once per session."""
    from tritonize.export.t5 import export_t5

    return export_t5(tiny_t5(demo), _root() / "t5-onnx" / demo)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster while other jobs share the 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
