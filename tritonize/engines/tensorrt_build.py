"""Build one TensorRT engine from an ONNX graph and its plan (TensorRT 10.x Python API).

Written to the API of TensorRT 10.x as documented for the pinned NGC release (see
``tritonize/deploy/versions.env``): explicit batch is the default (``create_network(0)``),
name-based I/O, ``build_serialized_network`` returning ``None`` on failure. Mixed precision is
the weakly typed 10.x form: ``BuilderFlag.FP16`` / ``BF16`` with ``OBEY_PRECISION_CONSTRAINTS``
and per-layer ``precision`` / ``set_output_type``. TensorRT 11 removed those (networks are
always strongly typed there), so TensorRT >= 11 is refused with a message that says so rather
than building an engine that silently ignores the plan.

``tensorrt`` is imported only inside these functions: this module imports on any machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tritonize.engines.plan import EnginePlan
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import GraphDecl

logger = logging.getLogger(__name__)

MAX_TENSORRT_MAJOR = 10  # weakly typed precision APIs: removed in TensorRT 11


class TensorRTUnavailable(EngineBuildError):
    """TensorRT cannot be imported here; engines are built where it runs."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module. Raises TensorRTUnavailable, or EngineBuildError for TensorRT >= 11."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError, or a stub package that raises at import
        raise TensorRTUnavailable(f"TensorRT is not installed here ({type(exc).__name__}: {exc})") from exc
    check_tensorrt_version(str(trt.__version__))
    return trt


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT whose precision APIs this build does not use correctly."""
    major = int(version.split(".")[0])
    if major > MAX_TENSORRT_MAJOR:
        raise EngineBuildError(
            f"TensorRT {version}: this build sets precision with BuilderFlag.FP16/BF16, OBEY_PRECISION_CONSTRAINTS "
            "and per-layer precision, which TensorRT 11 removed (networks are always strongly typed). Build in the "
            "TensorRT 10.x image of the pinned NGC release (tritonize/deploy/versions.env)."
        )


def parser_errors(parser: Any, onnx_path: Path) -> str:
    """One message listing every ONNX parser error with its node name, operator and description."""
    lines = [f"TensorRT's ONNX parser rejected {onnx_path} ({parser.num_errors} error(s)):"]
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        lines.append(f"  - node {error.node_name() or '?'!r} ({error.node_operator() or '?'}): {error.desc()}")
    return "\n".join(lines)


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


def _layer_onnx_name(layer: Any) -> str:
    """The ONNX node a layer came from: the parser's metadata ``[ONNX Layer: NAME | ...]``, else its name."""
    metadata = str(getattr(layer, "metadata", "") or "")
    marker = "[ONNX Layer: "
    if marker in metadata:
        return metadata.split(marker, 1)[1].split("|", 1)[0].split("]", 1)[0].strip()
    return str(layer.name)


def pin_fp32(trt: Any, network: Any, node_names: set[str]) -> int:
    """Force the layers made from ``node_names`` (and their outputs) to FP32; returns how many."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if _layer_onnx_name(layer) not in node_names and layer.name not in node_names:
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in (trt.float16, trt.bfloat16, trt.float32):
                layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _network_io(network: Any) -> list[tuple[str, str]]:
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    return [(t.name, t.dtype.name) for t in tensors]


def build_engine(
    onnx_path: Path,
    plan: EnginePlan,
    graph: GraphDecl,
    engine_path: Path,
    timing_cache: Path,
    keep_fp32_nodes: Iterable[str] = (),
) -> dict[str, Any]:
    """Parse, configure per ``plan``, build and write ``engine_path``; returns build facts.

    The timing cache at ``timing_cache`` is loaded when present and written back after the
    build, so later builds (other steps, other deployments, rebuilds) reuse measured tactics.

    Raises:
        TensorRTUnavailable: no TensorRT here.
        EngineBuildError: parser errors (every one, with node names), I/O that disagrees with
            the declared tensors, or a failed build.
    """
    trt = import_tensorrt()
    log = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(log)
    network = builder.create_network(0)  # explicit batch is the default in TensorRT 10
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(parser_errors(parser, onnx_path))
    problems = io_mismatches(_network_io(network), graph)
    missing = [t.name for t in graph.inputs if t.name not in {p.name for p in plan.profiles}]
    problems += [f"input {name} has no optimization profile" for name in missing]
    if problems:
        raise EngineBuildError(f"{plan.step}: " + "; ".join(problems))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    for tensor in plan.profiles:
        profile.set_shape(tensor.name, tensor.min, tensor.opt, tensor.max)
    config.add_optimization_profile(profile)
    for flag in plan.precision.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    pinned = pin_fp32(trt, network, set(keep_fp32_nodes)) if plan.precision.keep_fp32 else 0
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, False)

    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{plan.step}: TensorRT could not build an engine from {onnx_path} (see its log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(memoryview(serialized))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    seconds = time.monotonic() - started
    logger.info("%s: engine built in %.1f s (%d layers pinned to FP32)", plan.step, seconds, pinned)
    return {"build_seconds": round(seconds, 2), "fp32_layers": pinned, "tensorrt_version": str(trt.__version__)}
