"""Optional dependencies: each missing one ends a command with one line naming the extra to install."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tritonize.extras import MissingExtraError, extra_for, extras, missing_extra, require

PACKAGE = Path(__file__).resolve().parents[1] / "tritonize"
# Imported by tritonize but installed by none of its extras, on purpose: the base dependencies and
# what they bring (gevent and grpc come with locust / tritonclient[grpc]), what Triton's Python
# backend provides, and TensorRT (from NVIDIA's images; engine builds say so).
NOT_FROM_AN_EXTRA = {
    "numpy", "tokenizers", "onnxruntime", "tritonclient", "google", "pytriton", "psutil", "gevent", "grpc",
    "triton_python_backend_utils", "tensorrt",
}  # fmt: skip


def _third_party_imports() -> set[str]:
    """Top-level modules that tritonize's sources import (the Python-backend helpers aside)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and not m.startswith("tritonize")}


def test_extras_are_read_from_the_installed_metadata_of_pyproject():
    found = extras()
    assert {"export", "loadtest", "deploy"} <= set(found)
    assert {"torch", "transformers", "onnx"} <= found["export"] and "locust" in found["loadtest"]
    assert "all" not in found  # it names other extras, no distribution of its own


def test_every_optional_module_tritonize_imports_maps_to_an_extra():
    optional = _third_party_imports() - NOT_FROM_AN_EXTRA
    assert optional >= {"torch", "transformers", "locust", "yaml"}
    unmapped = {module for module in optional if extra_for(module) is None}
    assert not unmapped, f"imported, but no extra in pyproject.toml installs them: {sorted(unmapped)}"
    assert (extra_for("transformers.models"), extra_for("yaml"), extra_for("ml_dtypes")) == ("export", "deploy", "export")
    assert extra_for("numpy") is None and extra_for("psutil") is None  # base dependencies


def test_missing_extra_names_the_extra_and_command_in_one_line():
    error = missing_extra(ModuleNotFoundError("No module named 'transformers'", name="transformers.models"), "build")
    assert isinstance(error, MissingExtraError) and error.extra == "export"
    assert str(error) == "`tritonize build` needs transformers, which is not installed: pip install 'tritonize[export]'"
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None


def test_require_raises_for_a_missing_module_and_passes_for_an_installed_one():
    require("json", "numpy")
    with pytest.raises(MissingExtraError, match=r"pip install 'tritonize\[all\]'"):
        require("tritonize_no_such_module")


def test_cli_turns_an_import_failure_of_an_extra_into_one_line(tmp_path: Path):
    """The real CLI in a process where transformers cannot be imported (``sys.modules`` entry None)."""
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "from tritonize.cli import main\n"
        f"sys.exit(main(['build', '--demo', 'tiny', '--model', 'distilbert_emotion', '--out', {str(tmp_path / 'r')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "tritonize: error: `tritonize build` needs transformers, which is not installed: pip install 'tritonize[export]'"
    )
