"""Names and files of a generated repository, in one place.

Step model names derive from the deployment name, so a deployment's steps sort together in
``/v2/repository/index`` and in metrics, and no name is typed twice.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tritonize.backends.common import LABELS_FILE
from tritonize.backends.onnx_runner import MODEL_FILE as ONNX_FILE
from tritonize.backends.tokenize_step import TOKENIZER_FILE
from tritonize.repository.artifacts import StepFiles
from tritonize.repository.report import REPORT_FILE
from tritonize.spec import Target

__all__ = ["LABELS_FILE", "ONNX_FILE", "REPORT_FILE", "TOKENIZER_FILE"]  # re-exported: the backends and the report own these

VERSION = "1"
PLAN_FILE = "model.plan"  # Triton's default file name for platform tensorrt_plan
BUILD_INFO_FILE = "build_info.json"  # beside every engine: what built it (tritonize.engines.build_info)
HELPER_PREFIX = "tritonize_backend_"  # helper modules sit beside model.py under this prefix


@dataclass(frozen=True)
class StepNames:
    """Triton model names of one deployment's steps."""

    deployment: str

    @property
    def tokenizer(self) -> str:
        return f"{self.deployment}_tokenizer"

    @property
    def model(self) -> str:
        return f"{self.deployment}_model"

    @property
    def postprocess(self) -> str:
        return f"{self.deployment}_postprocess"

    def component(self, component: str) -> str:
        """Name of an extra engine step (T5: encoder, decoder, decoder_with_past)."""
        return f"{self.deployment}_{component}"


def version_dir(repository: Path, model_name: str) -> Path:
    path = repository / model_name / VERSION
    path.mkdir(parents=True, exist_ok=True)
    return path


def install_python_model(repository: Path, model_name: str, module: str, helpers: tuple[str, ...] = ()) -> Path:
    """Copy ``tritonize.backends.<module>`` as ``<model>/1/model.py`` with the modules it imports.

    ``common`` always goes along (as ``tritonize_backend_common.py``); ``helpers`` are other
    backend modules, copied as ``tritonize_backend_<name>.py`` (the fallback import names).
    """
    target = version_dir(repository, model_name)
    backends = resources.files("tritonize.backends")
    (target / "model.py").write_text(backends.joinpath(f"{module}.py").read_text(encoding="utf-8"), encoding="utf-8")
    for helper in ("common", *helpers):
        text = backends.joinpath(f"{helper}.py").read_text(encoding="utf-8")
        (target / f"{HELPER_PREFIX}{helper}.py").write_text(text, encoding="utf-8")
    return target / "model.py"


def write_labels(model_dir: Path, labels: tuple[str, ...]) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LABELS_FILE
    path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return path


def copy_file(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


def install_engine_step(repository: Path, model_name: str, target: Target, step: StepFiles) -> None:
    """The model step's version directory: the ORT runner (embedded target) and the step's files."""
    if target is Target.EMBEDDED:
        install_python_model(repository, model_name, "onnx_runner")
    version = version_dir(repository, model_name)
    for name, src in step.files.items():
        copy_file(src, version, name)
