"""What this machine has: the TensorRT library's version and the GPUs (no Python package needed).

``tritonize engines check`` runs where the engines will be served, e.g. in the Triton server
image, which ships libnvinfer but not the ``tensorrt`` Python package. So the version comes
from the ``tensorrt`` package when present, else from ``getInferLibVersion()`` of libnvinfer;
GPUs come from NVML (libnvidia-ml, installed with the driver), read through ctypes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

NVINFER_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so")
NVML_LIBRARY = "libnvidia-ml.so.1"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def tensorrt_version() -> str | None:
    """``tensorrt.__version__``, else libnvinfer's version as ``major.minor.patch``; None if absent."""
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # noqa: BLE001 - absent, or a stub package that raises at import
        pass
    for name in NVINFER_LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = int(lib.getInferLibVersion())  # major * 10000 + minor * 100 + patch (TensorRT 10)
        return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return None


def same_tensorrt(a: str, b: str) -> bool:
    """Equal major.minor.patch: an engine loads only in the TensorRT release that built it."""
    return a.split(".")[:3] == b.split(".")[:3]


def gpus() -> list[GpuInfo]:
    """The GPUs NVML sees, in index order; empty when there is no driver."""
    try:
        nvml = ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return []
    if nvml.nvmlInit_v2() != 0:
        return []
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return []
        found = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            name = ctypes.create_string_buffer(96)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            nvml.nvmlDeviceGetName(handle, name, ctypes.c_uint(96))
            nvml.nvmlDeviceGetCudaComputeCapability(handle, ctypes.byref(major), ctypes.byref(minor))
            found.append(GpuInfo(name.value.decode("utf-8", "replace"), (major.value, minor.value)))
        return found
    finally:
        nvml.nvmlShutdown()
