"""Run a TensorRT engine by tensor name (TensorRT 10: set_input_shape, set_tensor_address, execute_async_v3).

Used by engine validation in the build, where the engine is compared with its FP32 ONNX. Device
buffers are torch CUDA tensors (the engines image installs torch with the export extra), which
keeps this free of hand-written CUDA memory management. A runner is a step callable
``(inputs, output_names) -> outputs`` like the ONNX Runtime ones, so the same decoding and
comparison code drives both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tritonize.engines.tensorrt_build import import_tensorrt
from tritonize.errors import EngineBuildError


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.bfloat16: torch.bfloat16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
    }
    if dtype not in table:
        raise EngineBuildError(f"engine tensor type {dtype} has no torch equivalent")
    return table[dtype]


class EngineRunner:
    """One deserialized engine and one execution context on the current CUDA device.

    Raises EngineBuildError when the engine cannot be deserialized (another TensorRT release or
    GPU architecture) or an execution fails.
    """

    def __init__(self, engine_path: Path) -> None:
        import torch

        self._torch = torch
        self._trt = trt = import_tensorrt()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise EngineBuildError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def __call__(self, feeds: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        torch, trt = self._torch, self._trt
        keep = []  # device buffers must outlive the launch
        for name in self.inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda")
            tensor = tensor.to(_torch_dtype(trt, self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
            keep.append(tensor)
        results = {}
        for name in self.outputs:  # every output needs an address, wanted or not
            shape = tuple(self.context.get_tensor_shape(name))
            buffer = torch.empty(shape, dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(name)), device="cuda")
            self.context.set_tensor_address(name, buffer.data_ptr())
            results[name] = buffer
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineBuildError("TensorRT execution failed (execute_async_v3 returned False)")
        stream.synchronize()
        return {name: results[name].float().cpu().numpy() if results[name].is_floating_point()
                else results[name].cpu().numpy() for name in wanted}
