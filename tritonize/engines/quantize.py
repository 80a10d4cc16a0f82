"""INT8 for the CPU targets: ONNX Runtime dynamic quantization of the plain FP32 export.

Dynamic quantization (QInt8 weights, activations quantized per batch at run time) needs no
calibration data. It is applied to the plain export: quantizing an offline-fused graph failed
(shape inference lost the MatMul output types), while ONNX Runtime fuses the quantized graph
itself when it loads it. How much faster it is depends on the CPU (VNNI
instructions help most): ``tritonize bench`` measures its INT8 rows against FP32 in one run. Accuracy is checked by the build's gate, never assumed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tritonize.errors import EngineBuildError

logger = logging.getLogger(__name__)


def quantize_int8(onnx_path: Path, out_path: Path) -> Path:
    """Write the dynamically quantized ``onnx_path`` to ``out_path``. Raises EngineBuildError."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_dynamic(model_input=str(onnx_path), model_output=str(out_path), weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001 - onnx/ORT raise many types; keep the cause
        raise EngineBuildError(f"INT8 quantization of {onnx_path} failed: {type(exc).__name__}: {exc}") from exc
    logger.info("quantized %s -> %s (%.1f MB -> %.1f MB)", onnx_path.name, out_path,
                onnx_path.stat().st_size / 1e6, out_path.stat().st_size / 1e6)
    return out_path
