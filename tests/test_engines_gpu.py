"""What the engine build needs from the GPU without TensorRT: NVML facts, and the CUDA copies
Polygraphy's TrtRunner makes (its own libcudart bindings, ``polygraphy.cuda``).

Marked ``gpu``: skipped here (no GPU); run on a GPU machine, where they check the code the
build, the gate and ``tritonize engines check`` rely on against a real driver.
"""

from __future__ import annotations

import numpy as np
import pytest

from tritonize.engines.local import gpus

pytestmark = pytest.mark.gpu


def test_nvml_reports_gpu_name_and_compute_capability():
    found = gpus()
    assert found, "NVML sees no GPU"
    assert all(g.name and g.compute_capability >= (7, 0) for g in found)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
def test_polygraphy_cuda_round_trips_arrays_through_device_memory(dtype):
    from polygraphy import cuda

    data = (np.arange(3 * 5 * 7) % 1000).reshape(3, 5, 7).astype(dtype)
    stream = cuda.Stream()
    device = cuda.DeviceArray(shape=data.shape, dtype=data.dtype)
    try:
        device.copy_from(data, stream=stream)
        back = device.numpy()
    finally:
        device.free()
        stream.free()
    np.testing.assert_array_equal(back, data)
