"""Run a TensorRT engine by tensor name (TensorRT 10: set_input_shape, set_tensor_address, execute_async_v3).

Used by engine validation in the build, where the engine is compared with its FP32 ONNX. Device
buffers come from :mod:`tritonize.engines.cuda` (libcudart through ctypes). A runner is a step
callable ``(inputs, output_names) -> outputs`` like the ONNX Runtime ones, so the same decoding
and comparison code drives both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tritonize.engines.cuda import CudaRuntime
from tritonize.engines.tensorrt_build import import_tensorrt
from tritonize.errors import EngineBuildError


def numpy_dtype(trt: Any, dtype: Any) -> Any:
    """numpy dtype of a TensorRT I/O type (engine I/O is checked against the declared types)."""
    table = {trt.float32: np.float32, trt.float16: np.float16, trt.int32: np.int32, trt.int64: np.int64,
             trt.bool: np.bool_}
    if dtype not in table:
        raise EngineBuildError(f"engine I/O type {dtype} has no numpy equivalent")
    return table[dtype]


class EngineRunner:
    """One deserialized engine and one execution context on the current CUDA device.

    Raises EngineBuildError when the engine cannot be deserialized (another TensorRT release or
    GPU architecture) or an execution fails.
    """

    def __init__(self, engine_path: Path) -> None:
        self._trt = trt = import_tensorrt()
        self._cuda = CudaRuntime()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise EngineBuildError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def __call__(self, feeds: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        cuda, buffers = self._cuda, []
        try:
            for name in self.inputs:
                array = np.ascontiguousarray(feeds[name], dtype=numpy_dtype(self._trt, self.engine.get_tensor_dtype(name)))
                pointer = cuda.malloc(array.nbytes)
                buffers.append(pointer)
                cuda.to_device(pointer, array)
                self.context.set_input_shape(name, array.shape)
                self.context.set_tensor_address(name, pointer)
            shapes = {}
            for name in self.outputs:  # every output needs an address, wanted or not
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = numpy_dtype(self._trt, self.engine.get_tensor_dtype(name))
                pointer = cuda.malloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)
                buffers.append(pointer)
                self.context.set_tensor_address(name, pointer)
                shapes[name] = (pointer, shape, dtype)
            if not self.context.execute_async_v3(cuda.stream):
                raise EngineBuildError("TensorRT execution failed (execute_async_v3 returned False)")
            cuda.synchronize()
            return {name: cuda.to_host(*shapes[name]) for name in wanted}
        finally:
            for pointer in buffers:
                cuda.free(pointer)
