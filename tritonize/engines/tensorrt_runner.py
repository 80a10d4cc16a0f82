"""The TensorRT side of :class:`tritonize.engines.runners.ProfiledStep`: Polygraphy's ``TrtRunner``.

``TrtRunner`` deserializes the engine, owns one execution context, a CUDA stream and the device
buffers (Polygraphy's own libcudart bindings), sets input shapes, allocates outputs through an
output allocator and frees all of it on deactivate. What is ours is thin: the profile is read
from the engine itself (``get_tensor_profile_shape``, so the check is against what was built,
not what was planned), and after each run every output's shape must be resolved (no -1 left:
an output whose size depends on the data is not what the Triton config declares).

Runs where TensorRT and a GPU are; ``tensorrt`` is imported only when a step is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tritonize.engines.profiles import AxisRange, TensorProfile
from tritonize.engines.runners import ProfiledStep
from tritonize.errors import EngineBuildError
from tritonize.tensorrt_facts import PROFILE_SHAPE_ORDER

PROFILE_INDEX = 0  # one profile per engine (tritonize.engines.plan)


class TensorRTStep(ProfiledStep):
    """A TensorRT engine as a profiled step. Raises EngineBuildError when the engine will not
    deserialize here (another TensorRT release or GPU architecture)."""

    def activate(self) -> None:
        super().activate()
        engine = self.runner.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._trt = trt = _tensorrt()
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in inputs]
        self.profiles = tuple(_profile(engine, name) for name in inputs)

    def check_outputs(self, outputs: dict[str, Any]) -> None:
        context = self.runner.context
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineBuildError(f"{self.step}: output {name} has unresolved shape {list(shape)} after the run")


def _tensorrt() -> Any:
    from tritonize.engines.tensorrt_build import import_tensorrt

    return import_tensorrt()


def _profile(engine: Any, name: str) -> TensorProfile:
    shapes = dict(zip(PROFILE_SHAPE_ORDER, engine.get_tensor_profile_shape(name, PROFILE_INDEX)))
    low, opt, high = (tuple(shapes[k]) for k in PROFILE_SHAPE_ORDER)
    return TensorProfile(name, tuple(AxisRange(a, b, c) for a, b, c in zip(low, opt, high)))


def tensorrt_step(step: str, engine_path: Path) -> TensorRTStep:
    """A step running the engine at ``engine_path`` (activated on first use or ``with``)."""
    _tensorrt()
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    return TensorRTStep(step, TrtRunner(EngineFromBytes(BytesFromPath(str(engine_path))), name=step))
