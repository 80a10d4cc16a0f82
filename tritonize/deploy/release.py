"""The pinned NGC release: ``versions.env`` loaded into one typed, checked record.

Why one file: the Triton server image, the TensorRT image that builds the engines, the driver a
server needs and the NumPy the Python backend accepts all follow from one NGC release, and an
engine built by one TensorRT fails to load in another. Everything that names an image or a
version (compose, Kubernetes, Dockerfile build args, the docs' release table) is generated from
this record, and every value carries the page it was read from (``# source:`` lines).

The rule between the two images is "the same TensorRT version", not "the same tag": the
engine-build image checks ``tensorrt.__version__`` and its ``libnvinfer``
(``tritonize deploy release --check-tensorrt``), the serving image its ``libnvinfer``
(:mod:`tritonize.tensorrt_facts`, run by ``build/Dockerfile.triton``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from tritonize.errors import ReleaseError
from tritonize.tensorrt_facts import same_release, version_parts

RELEASE_FILE = "versions.env"
NGC_REGISTRY = "nvcr.io/nvidia"
# What the repository's Python-backend models import besides NumPy (tokenizer step, T5 loop).
PYTHON_MODEL_PACKAGES = ("tokenizers",)

_TAG = re.compile(r"^\d{2}\.\d{2}$")
_IMAGE = re.compile(r"^nvcr\.io/nvidia/(?P<name>[a-z]+):(?P<tag>\d{2}\.\d{2})-py3$")
SOURCE_PREFIX = "# source:"
NO_DRIVERS = "none"
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
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> pages the value was read from
    source: str = f"tritonize/deploy/{RELEASE_FILE}"

    def __post_init__(self) -> None:
        if not _TAG.match(self.ngc_release):
            self._fail("NGC_RELEASE", f"must be an NGC tag like 26.07, got {self.ngc_release!r}")
        if self.triton_image != image_for("tritonserver", self.ngc_release):
            self._fail("TRITON_IMAGE", f"must be {image_for('tritonserver', self.ngc_release)} (the NGC_RELEASE tag), got {self.triton_image!r}")
        match = _IMAGE.match(self.tensorrt_image)
        if not match or match["name"] != "tensorrt":
            # Any tag: what must agree with the serving image is the TensorRT inside, checked at image build.
            self._fail("TENSORRT_IMAGE", f"must be {image_for('tensorrt', 'YY.MM')}, got {self.tensorrt_image!r}")
        dotted = ("TRITON_VERSION", "TENSORRT_VERSION", "CUDA_VERSION", "MIN_COMPUTE_CAPABILITY", "CONTAINER_PYTHON")
        for key in dotted:
            if not _VERSION.match(getattr(self, _KEYS[key])):
                self._fail(key, f"must be a dotted version, got {getattr(self, _KEYS[key])!r}")
        if not all(_VERSION.match(v) for v in self.datacenter_compat_drivers):
            self._fail("DATACENTER_COMPAT_DRIVERS", f"must be comma-separated versions or {NO_DRIVERS}, got {self.datacenter_compat_drivers}")
        if self.sources:
            unsourced = [key for key in _KEYS if not self.sources.get(key)]
            if unsourced:
                self._fail(unsourced[0], f"has no '{SOURCE_PREFIX} <page>' line above it: every pinned value cites its page")

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
        if not same_release(installed, self.tensorrt_version):
            self._fail(
                "TENSORRT_VERSION",
                f"pinned {self.tensorrt_version} but this image has TensorRT {installed}: fix versions.env "
                "(engines built here only load in the Triton image of the same TensorRT)",
            )

    def check_python(self, installed: str) -> None:
        """Raise unless ``installed`` (``platform.python_version()``) is the container Python (major.minor)."""
        if version_parts(installed)[:2] != version_parts(self.container_python)[:2]:
            self._fail("CONTAINER_PYTHON", f"pinned {self.container_python} but this image runs Python {installed}")

    def facts(self) -> dict[str, str]:
        """Name -> value of every pinned fact, for the CLI and the docs' release table."""
        return {key: _text(getattr(self, attr)) for key, attr in _KEYS.items()}

    def value(self, key: str) -> str:
        """A pinned fact as written in versions.env."""
        return self.facts()[key]


MARKDOWN_BEGIN = "<!-- release table: generated by `tritonize deploy release --markdown`; do not edit -->"
MARKDOWN_END = "<!-- end of release table -->"


def markdown_table(release: Release) -> str:
    """The docs' table of the pinned release with each value's sources, between markers a test
    compares with a fresh rendering (``docs/release.md``)."""
    compat = ", ".join(f"R{d.split('.')[0]} from {d}" for d in release.datacenter_compat_drivers) or "none listed for this release"
    numpy = "yes" if release.python_backend_numpy2 else f"no: the image pins `{release.numpy_requirement}`"
    rows = [
        ("NGC release", release.ngc_release, ("NGC_RELEASE",)),
        ("Triton server image", f"`{release.triton_image}` (Triton {release.triton_version})", ("TRITON_IMAGE", "TRITON_VERSION")),
        ("TensorRT image (engine build)", f"`{release.tensorrt_image}`", ("TENSORRT_IMAGE",)),
        ("TensorRT in both images", f"{release.tensorrt_version} (checked when each image is built)", ("TENSORRT_VERSION",)),
        ("CUDA", release.cuda_version, ("CUDA_VERSION",)),
        ("NVIDIA driver", f"R{release.min_driver} or later; forward-compatible data-center branches: {compat}", ("MIN_DRIVER", "DATACENTER_COMPAT_DRIVERS")),
        ("GPU", f"compute capability {release.min_compute_capability} or higher", ("MIN_COMPUTE_CAPABILITY",)),
        ("Python in the containers", release.container_python, ("CONTAINER_PYTHON",)),
        ("NumPy 2 in the Python backend", numpy, ("PYTHON_BACKEND_NUMPY2",)),
        ("torch in the gpu serving image", f"`{release.python_backend_torch}`", ("PYTHON_BACKEND_TORCH",)),
    ]
    lines = [MARKDOWN_BEGIN, "| | | Source |", "|---|---|---|"]
    for name, value, keys in rows:
        cited = dict.fromkeys(source for key in keys for source in release.sources.get(key, ()))
        lines.append(f"| {name} | {value} | {'<br>'.join(_cite(s) for s in cited)} |")
    return "\n".join([*lines, MARKDOWN_END]) + "\n"


def marked_table(text: str, begin: str = MARKDOWN_BEGIN, end: str = MARKDOWN_END) -> str:
    """The generated block between ``begin`` and ``end`` in ``text`` (markers included, with its newline).

    Raises:
        ReleaseError: the markers are missing.
    """
    try:
        start, stop = text.index(begin), text.index(end) + len(end)
    except ValueError:
        raise ReleaseError(f"no generated-table markers ({begin!r} ... {end!r})") from None
    return text[start : stop + 1] if text[stop : stop + 1] == "\n" else text[start:stop]


def generated_tables(release: Release) -> dict[tuple[str, str], str]:
    """(begin, end) markers -> fresh block, for every table the docs carry: the release and the crashers."""
    from tritonize import triton_facts

    return {
        (MARKDOWN_BEGIN, MARKDOWN_END): markdown_table(release),
        (triton_facts.CRASHERS_BEGIN, triton_facts.CRASHERS_END): triton_facts.crashers_markdown(),
    }


def update_marked_tables(path: Path, release: Release) -> int:
    """Replace every generated table found in ``path`` with a fresh rendering; returns how many.

    Raises:
        ReleaseError: ``path`` holds none of the generated tables.
    """
    text = path.read_text(encoding="utf-8")
    found = 0
    for (begin, end), block in generated_tables(release).items():
        if begin in text:
            text = text.replace(marked_table(text, begin, end), block, 1)
            found += 1
    if not found:
        raise ReleaseError(f"{path}: no generated-table markers")
    path.write_text(text, encoding="utf-8")
    return found


def _cite(source: str) -> str:
    """``URL (note)`` -> a Markdown autolink and the note."""
    url, _, note = source.partition(" ")
    return f"<{url}> {note}".strip() if url.startswith("http") else source


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or NO_DRIVERS
    return str(value)


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
    """Parse ``KEY=VALUE`` lines and the ``# source: <page>`` lines above each.

    Raises :class:`ReleaseError` on unknown, missing, repeated, malformed or unsourced keys.
    """
    values: dict[str, str] = {}
    sources: dict[str, tuple[str, ...]] = {}
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith(SOURCE_PREFIX):
            pending.append(line[len(SOURCE_PREFIX) :].strip())
            continue
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in _KEYS or key in values or not value or " " in value or "#" in value:
            problem = "unknown key" if sep and key not in _KEYS else "must be KEY=VALUE with a known key, once, no spaces"
            raise ReleaseError(f"{source}:{number}: {problem}: {raw!r}")
        values[key] = value
        sources[key], pending = tuple(pending), []
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
    drivers = values["DATACENTER_COMPAT_DRIVERS"]
    kwargs["datacenter_compat_drivers"] = () if drivers == NO_DRIVERS else tuple(drivers.split(","))
    return Release(**kwargs, sources=sources, source=source)  # type: ignore[arg-type]


def load_release(path: str | Path | None = None) -> Release:
    """The release tritonize ships (``tritonize/deploy/versions.env``), or another file for tests and forks."""
    if path is None:
        text = resources.files("tritonize.deploy").joinpath(RELEASE_FILE).read_text(encoding="utf-8")
        return parse_release(text, f"tritonize/deploy/{RELEASE_FILE}")
    try:
        return parse_release(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read: {exc.strerror}") from None
