"""Build one TensorRT engine from its precision graph, through Polygraphy's loaders.

The precision is in the graph (:mod:`tritonize.engines.precision_graph`), so the network is
strongly typed and the builder gets no precision flags: the same build on TensorRT 10.x (the
``STRONGLY_TYPED`` flag) and 11 (always strongly typed), see
:mod:`tritonize.tensorrt_facts`. Polygraphy does the TensorRT plumbing:
``NetworkFromOnnxPath(strongly_typed=...)`` (parser, external weights, plugins),
``CreateConfig(tf32=False, profiles=[Profile]...)`` (it *clears* ``BuilderFlag.TF32``, which
TensorRT enables by default: an FP32 engine here is FP32, gated with FP32 tolerances) and
``EngineBytesFromNetwork(save_timing_cache=...)`` (build; the timing cache is merged into the
file, ``ignore_mismatch=True``, and written only when the builder has one).

What is ours: :func:`build_settings` (plan -> settings, testable without TensorRT), the I/O
check against the declared tensors, and the timing cache's *load*. Polygraphy's
``load_timing_cache`` passes the file to ``create_timing_cache`` and ``set_timing_cache``
without looking at what they return (``polygraphy/backend/trt/config.py``, 0.53.6): a blob from
another TensorRT or GPU then fails the build. :func:`_attach_timing_cache` loads it tolerantly
(an empty cache on any failure, logged); and each (TensorRT release, compute capability) has
its own file (:func:`timing_cache_name`), so builds for another GPU never share one.

``tensorrt`` and ``polygraphy``'s TensorRT side are imported only inside these functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.engines.plan import EnginePlan
from tritonize.engines.profiles import TensorProfile
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import GraphDecl
from tritonize.tensorrt_facts import check_supported, release_text, strongly_typed_flag

logger = logging.getLogger(__name__)

TIMING_CACHE_PREFIX = "tensorrt_timing"
TIMING_CACHE_PATTERN = f"{TIMING_CACHE_PREFIX}.*.cache"  # every build's cache, at the repository root


class TensorRTUnavailable(EngineBuildError):
    """TensorRT cannot be imported here; engines are built where it runs."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module. Raises TensorRTUnavailable, or EngineBuildError for a TensorRT
    older than the API this build uses."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError, or a stub package that raises at import
        raise TensorRTUnavailable(f"TensorRT is not installed here ({type(exc).__name__}: {exc})") from exc
    try:
        check_supported(str(trt.__version__))
    except ValueError as exc:
        raise EngineBuildError(str(exc)) from None
    return trt


def timing_cache_name(tensorrt_version: str, compute_capability: tuple[int, int]) -> str:
    """One timing cache per TensorRT release and GPU architecture (tactic timings of one do
    not carry over to the other; TensorRT refuses a cache from another device)."""
    return f"{TIMING_CACHE_PREFIX}.trt{release_text(tensorrt_version)}.sm{compute_capability[0]}{compute_capability[1]}.cache"


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """What the builder is told for one engine. No precision flags: the graph is typed."""

    strongly_typed: bool  # the network flag (TensorRT 10.x); 11 is always strongly typed
    tf32: bool  # never: FP32 in the graph means FP32 math
    workspace_bytes: int
    profiles: tuple[TensorProfile, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"strongly_typed": self.strongly_typed, "tf32": self.tf32, "workspace_bytes": self.workspace_bytes}


def build_settings(plan: EnginePlan, tensorrt_version: str) -> BuildSettings:
    return BuildSettings(
        strongly_typed=strongly_typed_flag(tensorrt_version),
        tf32=False,
        workspace_bytes=plan.workspace_mb << 20,
        profiles=plan.profiles,
    )


# TensorRT DataType names -> Triton's, for the I/O check against the declared tensors.
_TRITON_TYPES = {
    "FLOAT": "TYPE_FP32",
    "HALF": "TYPE_FP16",
    "BF16": "TYPE_BF16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
    "INT8": "TYPE_INT8",
    "UINT8": "TYPE_UINT8",
}


def io_mismatches(network_io: Iterable[tuple[str, str]], graph: GraphDecl) -> list[str]:
    """Engine I/O (name, TensorRT dtype name) vs the declared tensors the Triton config uses."""
    declared = {t.name: t.data_type for t in (*graph.inputs, *graph.outputs)}
    problems = []
    seen = set()
    for name, dtype in network_io:
        seen.add(name)
        triton = _TRITON_TYPES.get(dtype, dtype)
        if name not in declared:
            problems.append(f"engine tensor {name} is not declared for {graph.component}")
        elif triton != declared[name]:
            problems.append(f"{name}: the engine has {triton}, the Triton config declares {declared[name]}")
    problems += [f"declared tensor {n} is missing from the engine" for n in declared if n not in seen]
    return problems


def polygraphy_profile(profiles: Iterable[TensorProfile]) -> Any:
    """The plan's profiles as one ``polygraphy.backend.trt.Profile``."""
    from polygraphy.backend.trt import Profile

    profile = Profile()
    for tensor in profiles:
        profile.add(tensor.name, min=tensor.min, opt=tensor.opt, max=tensor.max)
    return profile


def polygraphy_config(settings: BuildSettings) -> Any:
    """Polygraphy's ``CreateConfig`` for ``settings``: profiles, TF32 cleared, no precision flags
    (constructing it needs no TensorRT)."""
    from polygraphy.backend.trt import CreateConfig

    return CreateConfig(tf32=settings.tf32, profiles=[polygraphy_profile(settings.profiles)])


def create_config(settings: BuildSettings, timing_cache: Path) -> Any:
    """:func:`polygraphy_config`, then the workspace pool and the tolerant timing-cache load."""
    from polygraphy.backend.trt import PostprocessConfig

    return PostprocessConfig(
        polygraphy_config(settings), lambda builder, network, cfg: _finish_config(cfg, settings, timing_cache)
    )


def _finish_config(config: Any, settings: BuildSettings, timing_cache: Path) -> None:
    import tensorrt as trt

    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    _attach_timing_cache(config, timing_cache)


def _attach_timing_cache(config: Any, path: Path) -> bool:
    """Use the cache at ``path`` when TensorRT accepts it; else keep the empty one Polygraphy's
    CreateConfig attached (logged). Returns whether the file's cache is in use."""
    if not path.is_file():
        return False
    try:
        cache = config.create_timing_cache(path.read_bytes())
        accepted = cache is not None and bool(config.set_timing_cache(cache, False))
    except Exception as exc:  # noqa: BLE001 - TensorRT raises RuntimeError/TypeError on a bad blob
        logger.warning("timing cache %s unreadable (%s: %s): building with an empty one", path, type(exc).__name__, exc)
        return False
    if not accepted:
        logger.warning("timing cache %s was made elsewhere (TensorRT refused it): building with an empty one", path)
    return accepted


def _network_io(network: Any) -> list[tuple[str, str]]:
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    return [(t.name, t.dtype.name) for t in tensors]


def build_engine(
    onnx_path: Path, plan: EnginePlan, graph: GraphDecl, engine_path: Path, timing_cache: Path
) -> dict[str, Any]:
    """Parse the precision graph at ``onnx_path``, build per ``plan``, write ``engine_path``.

    ``timing_cache`` is this TensorRT release's and GPU's cache file (:func:`timing_cache_name`):
    loaded when TensorRT accepts it, merged and written back after the build.

    Raises:
        TensorRTUnavailable: no TensorRT here.
        EngineBuildError: parser errors (logged above it by Polygraphy), I/O that disagrees
            with the declared tensors, an input without a profile, or a failed build.
    """
    trt = import_tensorrt()
    from polygraphy.backend.trt import EngineBytesFromNetwork, NetworkFromOnnxPath
    from polygraphy.exception import PolygraphyException

    version = str(trt.__version__)
    settings = build_settings(plan, version)
    try:
        network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=settings.strongly_typed)()
    except PolygraphyException as exc:
        raise EngineBuildError(f"{plan.step}: TensorRT's ONNX parser rejected {onnx_path.name}: {exc}") from exc
    problems = io_mismatches(_network_io(network[1]), graph)
    profiled = {p.name for p in settings.profiles}
    problems += [f"input {t.name} has no optimization profile" for t in graph.inputs if t.name not in profiled]
    if problems:
        raise EngineBuildError(f"{plan.step}: " + "; ".join(problems))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        serialized = EngineBytesFromNetwork(network, create_config(settings, timing_cache), save_timing_cache=str(timing_cache))()
    except PolygraphyException as exc:
        raise EngineBuildError(f"{plan.step}: TensorRT could not build an engine from {onnx_path.name}: {exc}") from exc
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(memoryview(serialized))
    seconds = time.monotonic() - started
    logger.info("%s: engine built in %.1f s (TensorRT %s, %s)", plan.step, seconds, version, settings.to_dict())
    return {"build_seconds": round(seconds, 2), "tensorrt_version": version, "settings": settings.to_dict()}
