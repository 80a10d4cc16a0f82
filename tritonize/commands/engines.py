"""``tritonize engines check``: compare each engine's build info with the local TensorRT and GPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonize.commands._args import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("engines", help="inspect the TensorRT engines of a gpu repository")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    check = add_command(verbs, "check", run_check, help="will each engine load here? (TensorRT version, GPU architecture, ONNX)")
    check.add_argument("--repository", type=Path, default=Path("model_repository"))
    check.add_argument("--tensorrt-version", default=None, help="check against this TensorRT instead of the local one")
    check.add_argument("--compute-capability", default=None, metavar="MAJOR.MINOR", type=_compute_capability,
                       help="check against this GPU architecture instead of the local GPU (e.g. 9.0)")


def _compute_capability(value: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in value.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 9.0, got {value!r}") from None
    return major, minor


def run_check(args: argparse.Namespace) -> int:
    from tritonize.engines.check import check_repository, stated_gpu
    from tritonize.engines.local import tensorrt_version

    trt_version = args.tensorrt_version or tensorrt_version()
    gpu = stated_gpu(args.compute_capability)
    print(f"here: TensorRT {trt_version or 'not found'}, GPU {gpu.name + ' (cc ' + gpu.cc + ')' if gpu else 'not found'}")
    checks = check_repository(args.repository, trt_version, gpu)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} engines will load here")
    return 1 if failed else 0
