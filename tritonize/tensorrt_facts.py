"""Every fact about TensorRT that depends on its version, in one place, each with where it was read;
and the check that an image holds the pinned TensorRT.

Sources (NVIDIA/TensorRT on GitHub, at the release tags named; the Python binding wheels
``tensorrt-cu12-bindings`` 10.13.3.9 and 11.4.0.106 from PyPI, read without libnvinfer):

* ``include/NvInfer.h``: ``NetworkDefinitionCreationFlag::kSTRONGLY_TYPED`` exists at v10.0.0;
  at v10.12.0 ``BuilderFlag::kFP16``, ``kBF16``, ``kOBEY_PRECISION_CONSTRAINTS`` and
  ``kPREFER_PRECISION_CONSTRAINTS`` are "Deprecated in TensorRT 10.12. Superseded by strong
  typing"; at v11.0 they are gone, and ``kSTRONGLY_TYPED`` is "Deprecated in TensorRT 11.0.
  Strongly typed mode is always enabled. This flag is retained for API compatibility but is
  ignored". The 11.4.0.106 bindings have no ``FP16`` / ``OBEY_PRECISION_CONSTRAINTS`` names.
* ``include/NvInfer.h``, ``BuilderFlag::kTF32``: "Allow (but not require) computations on tensors
  of type DataType::kFLOAT to use TF32 ... Enabled by default" (v10.0.0 through v11.0).
* ``include/NvInferRuntimeBase.h``: ``NV_TENSORRT_VERSION`` (what ``getInferLibVersion()``
  returns) is ``major * 10000 + minor * 100 + patch`` from v10.0.0 (v11.0 too); v8.6.1 had
  ``major * 1000 + minor * 100 + patch``.
* The bindings' ELF ``NEEDED`` entries: 10.13.3.9 needs ``libnvinfer.so.10``, 11.4.0.106
  ``libnvinfer.so.11``: the library's soname carries the major version.
* ``python/src/infer/pyCore.cpp`` (v10.11, v11.0): ``ICudaEngine.get_tensor_profile_shape(name,
  profile_index)`` returns ``[min, opt, max]``; ``IExecutionContext.set_input_shape`` returns the
  C++ ``bool`` (False for a shape outside the active profile); ``IBuilderConfig.set_timing_cache``
  returns ``bool`` (``NvInfer.h``: false when the cache's CUDA device properties differ, unless
  ``ignore_mismatch``); ``create_timing_cache`` returns the C++ pointer (None on a bad blob).
* Triton's TensorRT backend refuses a plan built by another TensorRT release ("Version tag does
  not match"): the engine-build image (``tensorrt.__version__`` and ``libnvinfer``) and the serving
  image (``libnvinfer``, which the backend loads) must both hold the pinned version.

Nothing here imports TensorRT: these are the rules the adapter applies to whatever version it
meets, and tests pin them against the sources above. Standard library only, and runnable as a
script: ``build/Dockerfile.triton`` copies this file into the tritonserver image (which has no
tritonize) and runs ``python3 tensorrt_facts.py 11.1.0.106``; exit status 1 with one line when
the library differs. Bad versions raise ``ValueError`` (the engine layer turns it into its own
error).
"""

from __future__ import annotations

import ctypes
import re
import sys

# Explicit batch by default, name-based I/O (set_input_shape / set_tensor_address /
# execute_async_v3), the strongly typed network flag: the API the engine layer is written to.
MIN_TENSORRT = (10, 0)
WEAK_TYPING_DEPRECATED_IN = (10, 12)  # BuilderFlag FP16/BF16/OBEY_PRECISION_CONSTRAINTS deprecated
WEAK_TYPING_REMOVED_IN = (11, 0)  # ... removed; every network strongly typed, the flag ignored
TF32_ENABLED_BY_DEFAULT = True  # BuilderFlag.TF32: an "FP32" engine is TF32 unless it is cleared
PROFILE_SHAPE_ORDER = ("min", "opt", "max")  # get_tensor_profile_shape's list
KNOWN_MAJORS = (11, 10)  # tried newest first when only libnvinfer is present (Triton's image)

_VERSION_BASE_FROM_10 = 10000  # NV_TENSORRT_VERSION_INT: major * 10000 + minor * 100 + patch
_VERSION_BASE_BEFORE_10 = 1000  # TensorRT 8.x: major * 1000 + minor * 100 + patch


def version_parts(version: str) -> tuple[int, ...]:
    """Leading numeric components of a version string (``10.11.0.post1`` -> (10, 11, 0)).

    Raises:
        ValueError: no leading number (``"ten"``).
    """
    parts: list[int] = []
    for piece in version.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    if not parts:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return tuple(parts)


def release_text(version: str) -> str:
    """``major.minor.patch`` of a version string: what engines are tied to."""
    return ".".join(map(str, version_parts(version)[:3]))


def same_release(a: str, b: str) -> bool:
    """Equal major.minor.patch (a build number or a ``.post1`` suffix does not matter): an engine
    loads only in the TensorRT release that built it."""
    return version_parts(a)[:3] == version_parts(b)[:3]


def check_supported(version: str) -> None:
    """Raise ValueError for a TensorRT older than :data:`MIN_TENSORRT`."""
    if version_parts(version)[:2] < MIN_TENSORRT:
        wanted = ".".join(map(str, MIN_TENSORRT))
        raise ValueError(f"TensorRT {version}: engines are built with TensorRT {wanted} or newer")


def strongly_typed_flag(version: str) -> bool:
    """Whether the network must be created with ``STRONGLY_TYPED``: yes before 11, where weak
    typing is the default; from 11 every network is strongly typed and the flag is ignored."""
    return version_parts(version)[:2] < WEAK_TYPING_REMOVED_IN


def library_name(major: int) -> str:
    """The runtime library's soname carries the major version (``libnvinfer.so.10``, ``libnvinfer.so.11``)."""
    return f"libnvinfer.so.{major}"


def nvinfer_sonames() -> tuple[str, ...]:
    """The ``libnvinfer`` sonames to try, newest major first, then the unversioned name."""
    return (*(library_name(m) for m in KNOWN_MAJORS), "libnvinfer.so")


def decode_infer_lib_version(value: int) -> str:
    """``getInferLibVersion()`` as ``major.minor.patch``.

    From TensorRT 10 the value is at least 100000 (10.0.0); 8.x encoded ``major * 1000``.
    """
    base = _VERSION_BASE_FROM_10 if value >= MIN_TENSORRT[0] * _VERSION_BASE_FROM_10 else _VERSION_BASE_BEFORE_10
    return f"{value // base}.{value % base // 100}.{value % 100}"


def library_version(pinned: str) -> str:
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
    if not same_release(found, pinned):
        raise RuntimeError(
            f"libnvinfer is TensorRT {found}, versions.env pins {pinned}: engines built for one do not load in the other"
        )
    return f"libnvinfer TensorRT {found} matches the pinned {pinned}"


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
