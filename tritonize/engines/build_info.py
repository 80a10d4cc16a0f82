"""The build-info file written beside every engine, its cache key, and the check against this machine.

An engine runs only under the TensorRT release that built it (Triton refuses it with "Version
tag does not match") and is tuned for one GPU architecture. ``build_info.json`` records both,
with the profiles, the precision plan and the ONNX it came from, so a deployment can say
exactly why an engine will not load, and a rebuild is skipped when nothing that shapes the
engine changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.engines.local import GpuInfo
from tritonize.engines.plan import EnginePlan
from tritonize.errors import EngineBuildError
from tritonize.tensorrt_facts import same_release

BUILD_INFO_VERSION = 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(onnx_sha256: str, tensorrt_version: str, compute_capability: tuple[int, int], plan: EnginePlan) -> str:
    """What decides an engine's bytes: the ONNX, the TensorRT release, the GPU architecture,
    the precision plan and the profiles (and the workspace, which bounds the tactics tried)."""
    material = {
        "onnx_sha256": onnx_sha256,
        "tensorrt": ".".join(tensorrt_version.split(".")[:3]),
        "compute_capability": list(compute_capability),
        "precision": plan.precision.to_dict(),
        "profiles": [p.to_dict() for p in plan.profiles],
        "workspace_mb": plan.workspace_mb,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class BuildInfo:
    """What built one engine. Written as ``build_info.json`` in the engine's directory."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    onnx_sha256: str
    plan: EnginePlan
    built_at: str
    build_seconds: float
    fp32_layers: int = 0

    @property
    def cache_key(self) -> str:
        return cache_key(self.onnx_sha256, self.tensorrt_version, self.compute_capability, self.plan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "build_info_version": BUILD_INFO_VERSION,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": list(self.compute_capability),
            "onnx_sha256": self.onnx_sha256,
            "plan": self.plan.to_dict(),
            "built_at": self.built_at,
            "build_seconds": self.build_seconds,
            "fp32_layers": self.fp32_layers,
            "cache_key": self.cache_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildInfo:
        return cls(
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=(int(data["compute_capability"][0]), int(data["compute_capability"][1])),
            onnx_sha256=str(data["onnx_sha256"]),
            plan=EnginePlan.from_dict(data["plan"]),
            built_at=str(data["built_at"]),
            build_seconds=float(data.get("build_seconds", 0.0)),
            fp32_layers=int(data.get("fp32_layers", 0)),
        )

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> BuildInfo:
        """Raises EngineBuildError when the file is missing or malformed."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise EngineBuildError(f"{path}: unreadable build info ({type(exc).__name__}: {exc})") from exc


def differences(info: BuildInfo, tensorrt_version: str | None, gpu: GpuInfo | None, onnx_sha256: str | None) -> list[str]:
    """Why an engine built as ``info`` would not serve here; empty when it will.

    ``tensorrt_version`` / ``gpu`` describe this machine (None: not found); ``onnx_sha256`` is
    the hash of the ONNX now beside the engine (None: no ONNX there to compare with).
    """
    problems = []
    if tensorrt_version is None:
        problems.append("no TensorRT found here (neither the tensorrt package nor libnvinfer)")
    elif not same_release(info.tensorrt_version, tensorrt_version):
        problems.append(
            f"built with TensorRT {info.tensorrt_version}, this machine has {tensorrt_version}: Triton refuses it "
            "('Version tag does not match'); rebuild it in the TensorRT image of the server's release"
        )
    if gpu is None:
        problems.append("no NVIDIA GPU found here (NVML)")
    elif tuple(gpu.compute_capability) != tuple(info.compute_capability):
        problems.append(
            f"built for compute capability {info.compute_capability[0]}.{info.compute_capability[1]} "
            f"({info.gpu_name}), this GPU is {gpu.cc} ({gpu.name}): engines are tied to the GPU architecture"
        )
    if onnx_sha256 is not None and onnx_sha256 != info.onnx_sha256:
        problems.append("the ONNX beside the engine changed since the engine was built: rebuild it")
    return problems
