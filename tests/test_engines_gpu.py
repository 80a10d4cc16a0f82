"""What the engine build needs from the GPU without TensorRT: NVML facts and libcudart buffers.

Marked ``gpu``: skipped here (no GPU); run on a GPU machine, where they check the code the
build and ``tritonize engines check`` rely on against a real driver.
"""

from __future__ import annotations

import numpy as np
import pytest

from tritonize.engines.cuda import CudaRuntime
from tritonize.engines.local import gpus

pytestmark = pytest.mark.gpu


def test_nvml_reports_gpu_name_and_compute_capability():
    found = gpus()
    assert found, "NVML sees no GPU"
    assert all(g.name and g.compute_capability >= (7, 0) for g in found)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
def test_cuda_runtime_round_trips_arrays_through_device_memory(dtype):
    cuda = CudaRuntime()
    data = (np.arange(3 * 5 * 7) % 1000).reshape(3, 5, 7).astype(dtype)
    pointer = cuda.malloc(data.nbytes)
    try:
        cuda.to_device(pointer, data)
        back = cuda.to_host(pointer, data.shape, dtype)
    finally:
        cuda.free(pointer)
        cuda.close()
    np.testing.assert_array_equal(back, data)
