"""TensorRT facts tritonize relies on, and the check that an image holds the pinned TensorRT.

Why a check in both images a GPU deployment builds: an engine loads only in the TensorRT version
that built it ("Version tag does not match"), so the engine-build image (``tensorrt.__version__``
and ``libnvinfer``) and the serving image (``libnvinfer``, which Triton's TensorRT backend loads)
must both hold the pinned version.

Standard library only, and runnable as a script: ``build/Dockerfile.triton`` copies this file
into the tritonserver image (which has no tritonize) and runs ``python3 tensorrt_facts.py
11.1.0.106``; exit status 1 with one line when the library differs.
"""

from __future__ import annotations

import ctypes
import re
import sys


def version_parts(version: str) -> tuple[int, ...]:
    """Leading numeric components of a version string (``10.11.0.post1`` -> (10, 11, 0))."""
    parts: list[int] = []
    for piece in version.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def decode_infer_lib_version(value: int) -> tuple[int, int, int]:
    """``getInferLibVersion()`` -> (major, minor, patch).

    NvInferRuntimeBase.h (TensorRT 10.x): ``NV_TENSORRT_VERSION_INT(major, minor, patch)`` is
    ``major * 10000 + minor * 100 + patch``, and ``getInferLibVersion()`` returns ``NV_TENSORRT_VERSION``.
    """
    if value < 10000:
        raise ValueError(f"getInferLibVersion() returned {value}: not a TensorRT 10 or later encoding")
    return value // 10000, (value // 100) % 100, value % 100


def same_release(installed: tuple[int, ...], pinned: str) -> bool:
    """major.minor.patch agree (a build number or a ``.post1`` suffix does not matter)."""
    return tuple(installed[:3]) == version_parts(pinned)[:3]


def library_name(major: int) -> str:
    """The runtime library's soname carries the major version (``libnvinfer.so.10``, ``libnvinfer.so.11``)."""
    return f"libnvinfer.so.{major}"


def library_version(pinned: str) -> tuple[int, int, int]:
    """The version of ``libnvinfer.so.<pinned major>`` loaded from this image.

    Raises:
        OSError: no such library (another TensorRT major, or none).
    """
    library = ctypes.CDLL(library_name(version_parts(pinned)[0]))
    library.getInferLibVersion.restype = ctypes.c_int32
    return decode_infer_lib_version(int(library.getInferLibVersion()))


def check_library(pinned: str) -> str:
    """One line saying the image's libnvinfer matches ``pinned``. Raises RuntimeError when it does not."""
    try:
        found = library_version(pinned)
    except OSError as exc:
        raise RuntimeError(f"no libnvinfer for the pinned TensorRT {pinned} in this image ({exc})") from None
    text = ".".join(str(p) for p in found)
    if not same_release(found, pinned):
        raise RuntimeError(
            f"libnvinfer is TensorRT {text}, versions.env pins {pinned}: engines built for one do not load in the other"
        )
    return f"libnvinfer TensorRT {text} matches the pinned {pinned}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: tensorrt_facts.py PINNED_TENSORRT_VERSION", file=sys.stderr)
        return 2
    try:
        print(check_library(argv[0]))
    except RuntimeError as exc:
        print(f"TensorRT check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
