"""The three images a deployment runs, each built FROM an image of the pinned release.

``engines`` (TensorRT image + tritonize[export]) builds the repository, ``triton`` (tritonserver
image + what the Python-backend models import) serves it, ``loadtest`` (tritonserver image +
tritonize[loadtest], so no other base image needs pinning) runs Locust. The Dockerfiles have no
default base image: the release reaches them only as build args from here. Both the engines and
the triton image check at build time that their TensorRT is the pinned one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tritonize.deploy.release import Release
from tritonize.spec import Target

BUILD_CONTEXT = "."
TENSORRT_CHECK = "tritonize/tensorrt_facts.py"  # copied into the triton image (no tritonize there) and run
SOURCE_DIR = "/opt/tritonize"  # where the loadtest image keeps the source tree (locustfile)
LOCUSTFILE = f"{SOURCE_DIR}/loadtest/locustfile.py"


@dataclass(frozen=True, kw_only=True)
class Image:
    """One image: its name (tagged with the NGC release), Dockerfile and build args."""

    name: str
    dockerfile: str
    args: dict[str, str] = field(default_factory=dict)

    def compose_build(self) -> dict[str, object]:
        return {"context": BUILD_CONTEXT, "dockerfile": self.dockerfile, "args": dict(self.args)}


def _name(role: str, release: Release, registry: str) -> str:
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return f"{prefix}tritonize/{role}:{release.ngc_release}"


def engines_image(release: Release, registry: str = "") -> Image:
    return Image(
        name=_name("engines", release, registry),
        dockerfile="build/Dockerfile.engines",
        args={"TENSORRT_IMAGE": release.tensorrt_image},
    )


def triton_image(release: Release, target: Target, registry: str = "") -> Image:
    """The serving image; the gpu target's also holds torch (see ``Release.python_model_requirements``)."""
    return Image(
        name=_name("triton" if target is Target.GPU else "triton-cpu", release, registry),
        dockerfile="build/Dockerfile.triton",
        args={
            "TRITON_IMAGE": release.triton_image,
            "TRITON_VERSION": release.triton_version,
            "TENSORRT_VERSION": release.tensorrt_version,
            "CONTAINER_PYTHON": release.container_python,
            "PYTHON_MODEL_REQUIREMENTS": " ".join(release.python_model_requirements(gpu=target is Target.GPU)),
        },
    )


def loadtest_image(release: Release, registry: str = "") -> Image:
    return Image(
        name=_name("loadtest", release, registry),
        dockerfile="build/Dockerfile.loadtest",
        args={"TRITON_IMAGE": release.triton_image},
    )
