"""What this machine has: the TensorRT library's version and the GPUs (no Python package needed).

``tritonize engines check`` runs where the engines will be served, e.g. in the Triton server
image, which ships libnvinfer but not the ``tensorrt`` Python package. So the version comes
from the ``tensorrt`` package when present, else from ``getInferLibVersion()`` of libnvinfer
(sonames and the version encoding: :mod:`tritonize.tensorrt_facts`); GPUs come from
NVML (libnvidia-ml, installed with the driver), read through ctypes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from tritonize.tensorrt_facts import decode_infer_lib_version, nvinfer_sonames

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
    for name in nvinfer_sonames():
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        return decode_infer_lib_version(int(lib.getInferLibVersion()))
    return None


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
