"""``tritonize deploy``: deployment files generated from the spec and the pinned NGC release.

    tritonize deploy compose [--target gpu|cpu] [--out docker-compose.yml]
    tritonize deploy kubernetes [--target gpu|cpu] [--replicas N] [--registry R] --out DIR
    tritonize deploy monitoring [--out deploy/monitoring]
    tritonize deploy release [--check-tensorrt] [--markdown] [--update docs/release.md ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tritonize.commands._args import add_command
from tritonize.spec import Target, load_spec

_TARGETS = ("gpu", "cpu")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("deploy", help="generate docker compose / Kubernetes files from the spec and the pinned release")
    verbs = p.add_subparsers(dest="deploy_command", required=True, metavar="WHAT")

    compose = add_command(verbs, "compose", run_compose, help="write docker-compose.yml (gpu) or docker-compose.cpu.yml (cpu)")
    compose.add_argument("--spec", type=Path, default=None, help="spec TOML (default: the one shipped)")
    compose.add_argument("--target", choices=_TARGETS, default="gpu")
    compose.add_argument("--out", default=None, help="file to write, '-' for stdout (default: docker-compose[.cpu].yml)")

    kube = add_command(verbs, "kubernetes", run_kubernetes, help="write Kubernetes manifests (one file per resource) into --out")
    kube.add_argument("--spec", type=Path, default=None, help="spec TOML (default: the one shipped)")
    kube.add_argument("--target", choices=_TARGETS, default="gpu")
    kube.add_argument("--replicas", type=int, default=None, help="Triton servers (default: the spec's [server] replicas)")
    kube.add_argument("--registry", default="", help="registry prefix of the images the cluster pulls, e.g. ghcr.io/me")
    kube.add_argument("--out", type=Path, required=True, help="directory for the manifests")

    watch = add_command(
        verbs, "monitoring", run_monitoring, help="write the compose profile 'monitoring' files: Prometheus config and rules, Grafana dashboard"
    )
    watch.add_argument("--spec", type=Path, default=None, help="spec TOML (default: the one shipped)")
    watch.add_argument("--out", type=Path, default=None, help="directory (default: deploy/monitoring, what compose mounts)")

    release = add_command(verbs, "release", run_release, help="print the pinned NGC release; check this image against it")
    release.add_argument(
        "--check-tensorrt",
        action="store_true",
        help="exit 1 unless this image's TensorRT (Python package and libnvinfer) is the pinned one",
    )
    release.add_argument("--markdown", action="store_true", help="print the release table of docs/release.md")
    release.add_argument(
        "--update", type=Path, metavar="FILE", action="append", help="rewrite the generated tables between their markers in FILE"
    )


def run_compose(args: argparse.Namespace) -> int:
    from tritonize.deploy.compose import DEFAULT_FILES, render
    from tritonize.deploy.release import load_release

    target = Target(args.target)
    text = render(load_spec(args.spec), load_release(), target)
    out = args.out or DEFAULT_FILES[target]
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    return 0


def run_kubernetes(args: argparse.Namespace) -> int:
    from tritonize.deploy.kubernetes import write_manifests
    from tritonize.deploy.kubernetes_monitoring import write_resources
    from tritonize.deploy.release import load_release
    from tritonize.deploy.tune import write_tune_job

    spec, release, target = load_spec(args.spec), load_release(), Target(args.target)
    paths = write_manifests(spec, release, target, args.out, replicas=args.replicas, registry=args.registry)
    paths.append(write_tune_job(spec, release, target, args.out, registry=args.registry))
    for path in [*paths, *write_resources(spec, args.out)]:
        print(f"wrote {path}")
    return 0


def run_monitoring(args: argparse.Namespace) -> int:
    from tritonize.deploy import monitoring, yaml_io

    out = args.out or Path(monitoring.COMPOSE_DIR)
    for relative, text in monitoring.compose_files(load_spec(args.spec)).items():
        print(f"wrote {yaml_io.write(out / relative, text)}")
    return 0


def run_release(args: argparse.Namespace) -> int:
    from tritonize.deploy.release import load_release, markdown_table

    release = load_release()
    if args.check_tensorrt:
        from tritonize.tensorrt_facts import check_library

        try:
            import tensorrt
        except ImportError:
            print("tritonize: error: TensorRT is not installed in this environment", file=sys.stderr)
            return 1
        release.check_tensorrt(tensorrt.__version__)
        print(f"TensorRT {tensorrt.__version__} matches the pinned {release.tensorrt_version} (NGC {release.ngc_release})")
        try:
            print(check_library(release.tensorrt_version))
        except RuntimeError as exc:
            print(f"tritonize: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.markdown:
        print(markdown_table(release), end="")
        return 0
    if args.update:
        from tritonize.deploy.release import update_marked_tables

        for path in args.update:
            print(f"updated {update_marked_tables(path, release)} generated table(s) in {path}")
        return 0
    for key, value in release.facts().items():
        print(f"{key}={value}")
    return 0
