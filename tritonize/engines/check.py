"""``tritonize engines check``: will each engine of a repository load and serve on this machine?

For every engine step it reads ``build_info.json`` and compares it with the TensorRT and GPU
here (or with a TensorRT version / compute capability given on the command line, to check a
repository for another server), and the ONNX now beside the engine with the one it was built
from. An engine from another TensorRT release fails in Triton with "Version tag does not
match"; this says so before the server is started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonize.engines.build_info import BuildInfo, differences, file_sha256
from tritonize.engines.local import GpuInfo, gpus
from tritonize.errors import EngineBuildError, RepositoryError


@dataclass(frozen=True)
class StepCheck:
    step: str
    problems: list[str] = field(default_factory=list)
    info: BuildInfo | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.ok and self.info is not None:
            i = self.info
            return (
                f"OK {self.step}: TensorRT {i.tensorrt_version}, {i.gpu_name} (cc {i.compute_capability[0]}."
                f"{i.compute_capability[1]}), {i.plan.precision.precision.value}"
            )
        return f"FAIL {self.step}: " + "; ".join(self.problems)


def check_step(
    step: str, engine: Path, build_info: Path, onnx: Path, tensorrt_version: str | None, gpu: GpuInfo | None
) -> StepCheck:
    """Check one engine step from its engine, build-info and ONNX files."""
    if not engine.exists():
        return StepCheck(step, [f"no {engine.name}: the engine was not built (it is built where TensorRT runs)"])
    try:
        info = BuildInfo.read(build_info)
    except EngineBuildError as exc:
        return StepCheck(step, [str(exc)])
    onnx_sha = file_sha256(onnx) if onnx.exists() else None
    return StepCheck(step, differences(info, tensorrt_version, gpu, onnx_sha), info)


def stated_gpu(capability: tuple[int, int] | None) -> GpuInfo | None:
    """The GPU to check against: one of this compute capability, else the first GPU here."""
    if capability is None:
        return next(iter(gpus()), None)
    return GpuInfo(f"compute capability {capability[0]}.{capability[1]} (stated)", capability)


def check_repository(repository: Path, tensorrt_version: str | None, gpu: GpuInfo | None) -> list[StepCheck]:
    """One check per ``tensorrt_plan`` model of ``repository``.

    Raises RepositoryError when it holds no Triton models, or none built for TensorRT.
    """
    from tritonize.repository import layout
    from tritonize.repository.steps import TENSORRT_PLATFORM
    from tritonize.repository.triton_config import parse_pbtxt

    configs = sorted(Path(repository).glob("*/config.pbtxt"))
    if not configs:
        raise RepositoryError(f"{repository} holds no Triton models; build one with `tritonize build --target gpu`")
    checks = []
    for path in configs:
        if parse_pbtxt(path.read_text(encoding="utf-8")).platform != TENSORRT_PLATFORM:
            continue
        version = path.parent / layout.VERSION
        files = (version / layout.PLAN_FILE, version / layout.BUILD_INFO_FILE, version / layout.ONNX_FILE)
        checks.append(check_step(path.parent.name, *files, tensorrt_version, gpu))
    if not checks:
        raise RepositoryError(f"{repository} has no tensorrt_plan models (is it a gpu-target repository?)")
    return checks
