"""``tritonize build``: write a Triton model repository from the spec (or print the gpu build plan)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tritonize.commands._args import add_command
from tritonize.demo import SIZES
from tritonize.spec import Target, load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "build", run, help="build a Triton model repository from the model spec")
    p.add_argument("--spec", type=Path, default=None, help="spec TOML (default: the one shipped, tritonize/models.toml)")
    p.add_argument("--demo", choices=SIZES, default=None, help="build local demo checkpoints instead of the hub ones")
    p.add_argument("--target", choices=[t.value for t in Target], default="embedded", help="where the model step runs")
    p.add_argument("--out", type=Path, default=Path("model_repository"), help="repository directory")
    p.add_argument("--model", action="append", default=None, help="rebuild only this deployment (repeatable); "
                   "the others in --out are kept and the build report is merged")
    p.add_argument("--validation-data", type=Path, default=None, help="text;label or TSV file whose texts validate "
                   "the exports and gate engines / INT8 (default: the built-in corpus that fits each deployment)")
    p.add_argument("--no-dynamic-batching", action="store_true", help="turn the dynamic batcher off (for benchmarks)")
    p.add_argument("--plan", action="store_true", help="print the gpu target's engine profiles and precision plans "
                   "(dry run: nothing is exported or written)")
    p.add_argument("--rehearse", action="store_true", help="with --target gpu: build as far as this machine can and "
                   "run the engine accuracy gate with ONNX Runtime standing in for each engine (its precision graph, "
                   "under its optimization profiles); builds no engines and is no substitute for the real gate")
    p.add_argument(
        "--train-data", type=Path, help="with --demo: fine-tune the demo checkpoints on this text;label or TSV file"
    )


def run(args: argparse.Namespace) -> int:
    from tritonize.corpus import load_corpus
    from tritonize.pipeline import BuildOptions, build, plan
    from tritonize.repository.report import report_path

    texts = tuple(e.text for e in load_corpus(args.validation_data)) if args.validation_data else ()
    options = BuildOptions(
        spec=load_spec(args.spec),
        out=args.out,
        target=Target(args.target),
        demo=args.demo,
        only=tuple(args.model or ()),
        dynamic_batching=not args.no_dynamic_batching,
        validation_texts=texts,
        train_data=args.train_data,
        rehearse=args.rehearse,
    )
    if args.plan:
        for deployment, plans in plan(options).items():
            print(f"{deployment}:")
            for engine in plans.values():
                print(engine.describe())
        return 0
    report = build(options)
    summary = {name: entry.validation.to_dict() for name, entry in report.models.items()}
    print(f"repository written to {args.out} (report: {report_path(args.out)})")
    print(json.dumps(summary, indent=2))
    if args.rehearse:
        gates = {name: e.accuracy_gate.to_dict() if e.accuracy_gate else {} for name, e in report.models.items()}
        print(json.dumps({"rehearsed accuracy gate": gates}, indent=2))
        print(report.rehearsal)
    return 0
