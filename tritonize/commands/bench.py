"""``tritonize bench``: served throughput vs raw ONNX Runtime, the HF pipeline and no batching."""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonize.demo import SIZES


def register(subparsers: argparse._SubParsersAction) -> None:
    from tritonize.bench.run import ROW_SETS, RUNTIMES

    parser = subparsers.add_parser(
        "bench",
        help="benchmark the served demo against raw ONNX Runtime and the HF pipeline",
        description=(
            "Builds (or reuses) the demo repository and a variant with dynamic batching off, serves "
            "them with the embedded Triton and measures, on the same texts: served gRPC/HTTP at "
            "concurrency 1/8/32, raw ONNX Runtime (the ceiling), the HF pipeline, dynamic batching "
            "on vs off, p99 at half load vs idle p50, and T5 served vs generate when present "
            "(--rows standard); the served deployment at saturation from several client processes "
            "vs its tokenizer alone (--rows overhead). With --runtime torch-cuda|torch-cpu it builds the "
            "deployments on the PyTorch runtime and measures its rows (--rows torch): served at concurrency "
            "1-128 and at saturation, 32-text requests at half load, raw PyTorch with and without CUDA graphs, "
            "the HF pipeline and generate on the same device, GPU utilisation and memory. Prints a Markdown "
            "table and the goals; writes bench.json and bench.md into --out."
        ),
    )
    parser.add_argument("--demo", choices=SIZES, default="full", help="demo checkpoint size")
    parser.add_argument("--quick", action="store_true", help="few texts and short runs (a smoke test)")
    parser.add_argument("--corpus", type=Path, help="text;label or TSV file (default: built-in emotion corpus)")
    parser.add_argument("--texts", type=int, help="texts per measurement (default 240, --quick 48)")
    parser.add_argument("--half-load-seconds", type=float, help="open-loop run length (default 15, --quick 3)")
    parser.add_argument("--repository", type=Path, help="use this built repository instead of building the demo")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached demo repositories")
    parser.add_argument(
        "--passes", type=int, help="repeat the whole bench; each row keeps its best (default 2, --quick 1)"
    )
    parser.add_argument("--no-hf", action="store_true", help="skip the HF pipeline baseline")
    parser.add_argument(
        "--rows",
        choices=ROW_SETS,
        help="row sets to measure (default: all for tiny, standard for full, torch with --runtime)",
    )
    parser.add_argument(
        "--runtime", choices=RUNTIMES, help="build the deployments with this embedded_runtime"
    )
    parser.add_argument("--python-instances", type=int, help="with --runtime: instances of the PyTorch step")
    parser.add_argument("--client-processes", type=int, help="load-generator processes at saturation (default: cores / 2)")
    parser.add_argument("--saturation-seconds", type=float, help="length of each saturation row (default 8, --quick 2)")
    parser.add_argument("--spec", type=Path, help="spec TOML the demo repositories are built from (default: shipped)")
    parser.add_argument("--model", help="classification deployment to measure (default: the first in the repository)")
    parser.add_argument(
        "--compare", type=Path, help="another build of the deployment (a tuned spec): its served and saturation rows too, same texts, same passes"
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench"), help="output directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tritonize.bench import BenchConfig, run_bench, to_markdown
    from tritonize.provenance import typed_command

    config = BenchConfig(
        demo=args.demo,
        quick=args.quick,
        corpus=args.corpus,
        out=args.out,
        texts=args.texts,
        half_load_s=args.half_load_seconds,
        repository=args.repository,
        rebuild=args.rebuild,
        hf=not args.no_hf,
        passes=args.passes,
        rows=args.rows,
        client_processes=args.client_processes,
        saturation_s=args.saturation_seconds,
        spec=args.spec,
        model=args.model,
        runtime=args.runtime,
        python_instances=args.python_instances,
        compare=args.compare,
    )
    result = run_bench(config, log=lambda line: print(f"  {line}", flush=True), command=typed_command())
    print()
    print(to_markdown(result))
    print(f"written: {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 0
