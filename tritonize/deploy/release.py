"""The pinned NGC release: ``versions.env`` loaded into one typed, checked record.

Why one file: the Triton server image, the TensorRT image that builds the engines, the driver a
server needs and the NumPy the Python backend accepts all follow from one NGC tag, and an engine
built by one TensorRT fails to load in another. Everything that names an image or a version
(compose, Kubernetes, Dockerfile build args, the README's table) is generated from this record.
The file is package data, so an installed tritonize (inside the engine-build image too) can check
the image it runs in against it: ``tritonize deploy release --check-tensorrt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from tritonize.errors import ReleaseError

RELEASE_FILE = "versions.env"
NGC_REGISTRY = "nvcr.io/nvidia"
# What the repository's Python-backend models import besides NumPy (tokenizer step, T5 loop).
PYTHON_MODEL_PACKAGES = ("tokenizers",)

_TAG = re.compile(r"^\d{2}\.\d{2}$")
_VERSION = re.compile(r"^\d+(\.\d+)+$")
_KEYS = {
    "NGC_RELEASE": "ngc_release",
    "TRITON_IMAGE": "triton_image",
    "TENSORRT_IMAGE": "tensorrt_image",
    "TRITON_VERSION": "triton_version",
    "TENSORRT_VERSION": "tensorrt_version",
    "CUDA_VERSION": "cuda_version",
    "MIN_DRIVER": "min_driver",
    "DATACENTER_COMPAT_DRIVERS": "datacenter_compat_drivers",
    "MIN_COMPUTE_CAPABILITY": "min_compute_capability",
    "CONTAINER_PYTHON": "container_python",
    "PYTHON_BACKEND_NUMPY2": "python_backend_numpy2",
    "PYTHON_BACKEND_TORCH": "python_backend_torch",
}


def image_for(name: str, tag: str) -> str:
    """``nvcr.io/nvidia/<name>:<tag>-py3``: the NGC naming both images follow."""
    return f"{NGC_REGISTRY}/{name}:{tag}-py3"


@dataclass(frozen=True, kw_only=True)
class Release:
    """One NGC release and what it pins. Raises :class:`ReleaseError` when the facts disagree."""

    ngc_release: str
    triton_image: str
    tensorrt_image: str
    triton_version: str
    tensorrt_version: str
    cuda_version: str
    min_driver: int
    datacenter_compat_drivers: tuple[str, ...]
    min_compute_capability: str
    container_python: str
    python_backend_numpy2: bool
    python_backend_torch: str
    source: str = f"tritonize/deploy/{RELEASE_FILE}"

    def __post_init__(self) -> None:
        if not _TAG.match(self.ngc_release):
            self._fail("NGC_RELEASE", f"must be an NGC tag like 25.07, got {self.ngc_release!r}")
        for key, name in (("TRITON_IMAGE", "tritonserver"), ("TENSORRT_IMAGE", "tensorrt")):
            expected = image_for(name, self.ngc_release)
            if getattr(self, _KEYS[key]) != expected:
                self._fail(key, f"must be {expected} (the same tag as NGC_RELEASE), got {getattr(self, _KEYS[key])!r}")
        dotted = ("TRITON_VERSION", "TENSORRT_VERSION", "CUDA_VERSION", "MIN_COMPUTE_CAPABILITY", "CONTAINER_PYTHON")
        for key in dotted:
            if not _VERSION.match(getattr(self, _KEYS[key])):
                self._fail(key, f"must be a dotted version, got {getattr(self, _KEYS[key])!r}")
        if not all(_VERSION.match(v) for v in self.datacenter_compat_drivers):
            self._fail("DATACENTER_COMPAT_DRIVERS", f"must be comma-separated versions, got {self.datacenter_compat_drivers}")

    def _fail(self, key: str, problem: str) -> None:
        raise ReleaseError(f"{self.source}: {key}: {problem}")

    @property
    def numpy_requirement(self) -> str:
        """The NumPy the Python-backend models may use in this release's tritonserver image."""
        return "numpy" if self.python_backend_numpy2 else "numpy<2"

    def python_model_requirements(self, gpu: bool = False) -> tuple[str, ...]:
        """pip requirements of the Python-backend models: NumPy per release, the rest as tritonize pins
        them; on GPU also torch, through which the T5 loop keeps step outputs on the device (DLPack)."""
        packages = (self.numpy_requirement, *(_requirement_of(name) for name in PYTHON_MODEL_PACKAGES))
        return (*packages, self.python_backend_torch) if gpu else packages

    def check_tensorrt(self, installed: str) -> None:
        """Raise unless ``installed`` (``tensorrt.__version__``) is the pinned TensorRT (major.minor.patch)."""
        if _release_parts(installed)[:3] != _release_parts(self.tensorrt_version)[:3]:
            self._fail(
                "TENSORRT_VERSION",
                f"pinned {self.tensorrt_version} but this image has TensorRT {installed}: fix versions.env "
                "(engines built here only load in the Triton image of the same TensorRT)",
            )

    def check_python(self, installed: str) -> None:
        """Raise unless ``installed`` (``platform.python_version()``) is the container Python (major.minor)."""
        if _release_parts(installed)[:2] != _release_parts(self.container_python)[:2]:
            self._fail("CONTAINER_PYTHON", f"pinned {self.container_python} but this image runs Python {installed}")

    def facts(self) -> dict[str, str]:
        """Name -> value of every pinned fact, for the CLI and the README table."""
        return {key: _text(getattr(self, attr)) for key, attr in _KEYS.items()}


MARKDOWN_BEGIN = "<!-- release table: generated by `tritonize deploy release --markdown`; do not edit -->"
MARKDOWN_END = "<!-- end of release table -->"


def markdown_table(release: Release) -> str:
    """The README's table of the pinned release, between markers a test compares with a fresh rendering."""
    compat = ", ".join(f"R{d.split('.')[0]} from {d}" for d in release.datacenter_compat_drivers)
    numpy = "yes" if release.python_backend_numpy2 else f"no: the image pins `{release.numpy_requirement}`"
    rows = [
        ("NGC release", release.ngc_release),
        ("Triton server image", f"`{release.triton_image}` (Triton {release.triton_version})"),
        ("TensorRT image (engine build)", f"`{release.tensorrt_image}` (TensorRT {release.tensorrt_version}: no NVIDIA page confirms it; the image build checks it)"),
        ("CUDA", release.cuda_version),
        ("NVIDIA driver", f"R{release.min_driver} or later; on data-center GPUs also {compat}"),
        ("GPU", f"compute capability {release.min_compute_capability} or higher"),
        ("Python in the containers", release.container_python),
        ("NumPy 2 in the Python backend", numpy),
    ]
    lines = [MARKDOWN_BEGIN, "| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows), MARKDOWN_END]
    return "\n".join(lines) + "\n"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _release_parts(version: str) -> tuple[int, ...]:
    """Leading numeric components of a version string (``10.11.0.post1`` -> (10, 11, 0))."""
    parts: list[int] = []
    for piece in version.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def _requirement_of(name: str) -> str:
    """tritonize's own requirement line for ``name`` (``tokenizers>=0.20``), so the image pins what tests ran with."""
    try:
        requires = metadata.requires("tritonize") or []
    except metadata.PackageNotFoundError:
        return name
    for line in requires:
        requirement = line.split(";", 1)[0].strip()
        if ";" not in line and re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower() == name:
            return requirement.replace(" ", "")
    return name


def parse_release(text: str, source: str) -> Release:
    """Parse ``KEY=VALUE`` lines. Raises :class:`ReleaseError` on unknown, missing, repeated or malformed keys."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in _KEYS or key in values or not value or " " in value or "#" in value:
            problem = "unknown key" if sep and key not in _KEYS else "must be KEY=VALUE with a known key, once, no spaces"
            raise ReleaseError(f"{source}:{number}: {problem}: {raw!r}")
        values[key] = value
    missing = sorted(set(_KEYS) - set(values))
    if missing:
        raise ReleaseError(f"{source}: missing {missing}")
    if values["PYTHON_BACKEND_NUMPY2"] not in ("true", "false"):
        raise ReleaseError(f"{source}: PYTHON_BACKEND_NUMPY2 must be true or false, got {values['PYTHON_BACKEND_NUMPY2']!r}")
    if not values["MIN_DRIVER"].isdigit():
        raise ReleaseError(f"{source}: MIN_DRIVER must be a driver branch number like 575, got {values['MIN_DRIVER']!r}")
    kwargs: dict[str, object] = {_KEYS[k]: v for k, v in values.items()}
    kwargs["min_driver"] = int(values["MIN_DRIVER"])
    kwargs["python_backend_numpy2"] = values["PYTHON_BACKEND_NUMPY2"] == "true"
    kwargs["datacenter_compat_drivers"] = tuple(values["DATACENTER_COMPAT_DRIVERS"].split(","))
    return Release(**kwargs, source=source)  # type: ignore[arg-type]


def load_release(path: str | Path | None = None) -> Release:
    """The release tritonize ships (``tritonize/deploy/versions.env``), or another file for tests and forks."""
    if path is None:
        text = resources.files("tritonize.deploy").joinpath(RELEASE_FILE).read_text(encoding="utf-8")
        return parse_release(text, f"tritonize/deploy/{RELEASE_FILE}")
    try:
        return parse_release(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read: {exc.strerror}") from None
