"""Just enough of the CUDA runtime, through ctypes, to feed a TensorRT engine from numpy.

Engine validation runs in the TensorRT image, which ships libcudart but no array library with
CUDA; a torch with its own CUDA would tie the image to the driver that torch build needs. So
device buffers, copies and a stream come straight from ``libcudart`` (the same library TensorRT
uses), and nothing else is installed for them.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from tritonize.errors import EngineBuildError

LIBRARIES = ("libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so")
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind


def _load() -> Any:
    names = [os.environ["TRITONIZE_CUDART"]] if os.environ.get("TRITONIZE_CUDART") else list(LIBRARIES)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        lib.cudaFree.argtypes = [ctypes.c_void_p]
        lib.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
        lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
        return lib
    raise EngineBuildError(f"no CUDA runtime library found (tried {names}; set TRITONIZE_CUDART to its path)")


class CudaRuntime:
    """Device buffers, host<->device copies and one stream. Raises EngineBuildError on CUDA errors."""

    def __init__(self) -> None:
        self._lib = _load()
        handle = ctypes.c_void_p()
        self._check(self._lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        self.stream = int(handle.value or 0)

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            message = self._lib.cudaGetErrorString(status).decode("utf-8", "replace")
            raise EngineBuildError(f"{what} failed: CUDA error {status} ({message})")

    def malloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        self._check(self._lib.cudaMalloc(ctypes.byref(pointer), max(1, nbytes)), f"cudaMalloc({nbytes})")
        return int(pointer.value)

    def free(self, pointer: int) -> None:
        self._check(self._lib.cudaFree(ctypes.c_void_p(pointer)), "cudaFree")

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        status = self._lib.cudaMemcpyAsync(
            ctypes.c_void_p(pointer), array.ctypes.data, array.nbytes, _HOST_TO_DEVICE, ctypes.c_void_p(self.stream)
        )
        self._check(status, "cudaMemcpyAsync host->device")
        self.synchronize()  # the host array may go away when this returns

    def to_host(self, pointer: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        out = np.empty(shape, dtype=dtype)
        status = self._lib.cudaMemcpyAsync(
            out.ctypes.data, ctypes.c_void_p(pointer), out.nbytes, _DEVICE_TO_HOST, ctypes.c_void_p(self.stream)
        )
        self._check(status, "cudaMemcpyAsync device->host")
        self.synchronize()
        return out

    def synchronize(self) -> None:
        self._check(self._lib.cudaStreamSynchronize(ctypes.c_void_p(self.stream)), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.stream:
            self._lib.cudaStreamDestroy(ctypes.c_void_p(self.stream))
            self.stream = 0
