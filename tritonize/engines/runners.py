"""Engine steps behind one runner interface: a TensorRT engine, or its ONNX Runtime stand-in.

The accuracy gate (:mod:`tritonize.engines.validate`) and the decoding loop call steps as
``step(feeds, wanted) -> outputs``. An engine accepts only shapes inside its optimization
profile, and Triton never sends more rows than ``max_batch_size``; a gate that sends label
scoring's rows x labels in one call would overflow it. :class:`ProfiledStep` is what keeps
every call inside the profile, and is ours: it splits feeds at the profile's largest batch,
checks every shape against the profile before anything runs (raising
:class:`~tritonize.errors.ProfileShapeError`) and joins the outputs.

What runs one chunk is a Polygraphy runner (``polygraphy.backend.base.BaseRunner``: activate,
``infer(feed_dict)``, deactivate): ``TrtRunner`` for an engine (:mod:`tritonize.engines.tensorrt_runner`),
``OnnxrtRunner`` for the rehearsal's stand-in (:func:`ort_stand_in`), which runs the engine's own
mixed-precision graph under the engine's profiles. So the rehearsal exercises the same
splitting, checks and errors as a real gate. Polygraphy imports TensorRT lazily; its ONNX
Runtime side runs anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.engines.profiles import TensorProfile
from tritonize.errors import EngineBuildError, ProfileShapeError
from tritonize.spec import Precision


def check_shapes(step: str, profiles: Sequence[TensorProfile], feeds: dict[str, np.ndarray]) -> None:
    """Raise ProfileShapeError for the first input whose shape lies outside its profile
    (EngineBuildError for a missing input)."""
    for profile in profiles:
        if profile.name not in feeds:
            raise EngineBuildError(f"{step}: input {profile.name} was not fed (got {sorted(feeds)})")
        shape = tuple(int(d) for d in np.shape(feeds[profile.name]))
        inside = len(shape) == len(profile.min) and all(lo <= d <= hi for d, lo, hi in zip(shape, profile.min, profile.max))
        if not inside:
            raise ProfileShapeError(step, profile.name, shape, profile.min, profile.max)


def split_rows(step: str, feeds: dict[str, np.ndarray], max_rows: int) -> list[dict[str, np.ndarray]]:
    """``feeds`` in chunks of at most ``max_rows`` along the batch axis (axis 0 of every input:
    every step of a Triton model with ``max_batch_size`` > 0 is batched on its first axis)."""
    rows = {int(np.shape(v)[0]) for v in feeds.values()}
    if len(rows) != 1:
        raise EngineBuildError(f"{step}: inputs disagree on the batch size: {sorted(rows)}")
    total = rows.pop()
    return [{k: v[start : start + max_rows] for k, v in feeds.items()} for start in range(0, max(total, 1), max_rows)]


class ProfiledStep:
    """A step callable that keeps every call inside an engine's optimization profile.

    ``runner`` is a Polygraphy runner; the step activates it on entry and deactivates it on
    exit (or :meth:`close`), which frees what it holds (a TensorRT context, its CUDA stream and
    buffers). Raises EngineBuildError for a failed run, ProfileShapeError for a shape outside
    the profile.
    """

    def __init__(self, step: str, runner: Any, profiles: Sequence[TensorProfile] = ()) -> None:
        self.step = step
        self.runner = runner
        self.profiles: tuple[TensorProfile, ...] = tuple(profiles)

    def __enter__(self) -> ProfiledStep:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def activate(self) -> None:
        from polygraphy.exception import PolygraphyException

        if self.runner.is_active:
            return
        try:
            self.runner.activate()
        except PolygraphyException as exc:
            raise EngineBuildError(f"{self.step}: {type(self.runner).__name__} could not start: {exc}") from exc

    def close(self) -> None:
        if self.runner.is_active:
            self.runner.deactivate()

    @property
    def max_rows(self) -> int:
        return min(p.max[0] for p in self.profiles)

    def check_outputs(self, outputs: dict[str, Any]) -> None:
        """Hook for runners that can say more about their outputs than their arrays do."""

    def __call__(self, feeds: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        from polygraphy.exception import PolygraphyException

        self.activate()
        if not self.profiles:
            raise EngineBuildError(f"{self.step}: no optimization profile to run under")
        parts = []
        for chunk in split_rows(self.step, feeds, self.max_rows):
            check_shapes(self.step, self.profiles, chunk)
            try:
                outputs = self.runner.infer({p.name: chunk[p.name] for p in self.profiles})
            except PolygraphyException as exc:
                raise EngineBuildError(f"{self.step}: inference failed: {exc}") from exc
            self.check_outputs(outputs)
            missing = [n for n in wanted if n not in outputs]
            if missing:
                raise EngineBuildError(f"{self.step}: no output(s) {missing} (has {sorted(outputs)})")
            rows = int(np.shape(chunk[self.profiles[0].name])[0])
            wrong = {n: np.shape(outputs[n]) for n in wanted if np.shape(outputs[n])[:1] != (rows,)}
            if wrong:
                raise EngineBuildError(f"{self.step}: {rows} rows in, outputs shaped {wrong}")
            # Runners may reuse their output buffers between calls (Polygraphy's TrtRunner does).
            parts.append({n: np.array(outputs[n], copy=True) for n in wanted})
        if len(parts) == 1:
            return parts[0]
        return {n: np.concatenate([p[n] for p in parts], axis=0) for n in wanted}


def stand_in_model(onnx_path: Path, precision: Precision) -> bytes:
    """The engine's graph as ONNX Runtime runs it on the CPU (BF16 nodes emulated, see
    :func:`tritonize.engines.precision_graph.emulate_bf16`)."""
    import onnx

    model = onnx.load(str(onnx_path))
    if precision is Precision.BF16:
        from tritonize.engines.precision_graph import emulate_bf16

        model = emulate_bf16(model)
    return model.SerializeToString()


def ort_stand_in(step: str, onnx_path: Path, precision: Precision, profiles: Sequence[TensorProfile]) -> ProfiledStep:
    """The rehearsal's stand-in for one engine: its mixed-precision graph in ONNX Runtime on the
    CPU, constrained to the engine plan's ``profiles``."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    session = SessionFromOnnx(stand_in_model(onnx_path, precision), providers=["cpu"])
    return ProfiledStep(step, OnnxrtRunner(session, name=f"{step}-rehearsal"), profiles)
