"""``tritonize tune``: NVIDIA Model Analyzer searches a deployment's batching and instances; the spec keeps the answer.

Runs Model Analyzer's `profile` on a built repository: the search space (instances, max_batch_size
within the engine profile, preferred batch sizes, queue delays; the Python steps' on the embedded
target) is generated from the spec as Model Analyzer YAML. Keeps Model Analyzer's reports under
--out, writes summary.json / summary.md (configurations tried, throughput and p99 of each, the one
chosen under the latency budget) and with --write-spec edits the chosen keys in the spec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonize.commands._args import add_command, add_protocol_argument, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "tune", run, help="search instance counts, batch sizes and queue delays with NVIDIA Model Analyzer", doc=__doc__
    )
    p.add_argument("--model", required=True, help="deployment to tune (a text-classification [[model]] of the spec)")
    p.add_argument("--repository", type=Path, default=Path("model_repository"), help="built repository (never modified)")
    p.add_argument("--target", choices=("embedded", "cpu", "gpu"), help="default: the target the repository was built for")
    p.add_argument("--mode", choices=("quick", "brute"), default="quick", help="Model Analyzer's run_config_search_mode")
    p.add_argument("--latency-budget-ms", type=positive_float, help="p99 latency constraint (Model Analyzer perf_latency_p99)")
    p.add_argument("--spec", type=Path, help="spec TOML the repository was built from (default: the shipped one)")
    p.add_argument("--write-spec", action="store_true", help="write the chosen values into --spec and print the diff")
    p.add_argument("--out", type=Path, default=Path("artifacts/tune"), help="output directory (Model Analyzer's reports, summary)")
    p.add_argument("--corpus", type=Path, help="text;label or TSV file perf_analyzer sends (default: built-in emotion corpus)")
    p.add_argument("--perf-analyzer", type=Path, help="perf_analyzer binary (default: $PERF_ANALYZER, PATH, .cache/perf-venv)")
    s = p.add_argument_group("search bounds and measurement")
    s.add_argument("--max-instances", type=positive_int, help="largest instance count tried (default: CPU cores)")
    s.add_argument("--max-python-batch", type=positive_int, help="largest python_max_batch_size tried (default: 8 x max_batch_size)")
    s.add_argument("--max-concurrency", type=positive_int, default=64, help="largest client concurrency (default 64)")
    s.add_argument("--measurement-ms", type=positive_int, default=3000, help="perf_analyzer time window (default 3000)")
    s.add_argument("--top-configs", type=positive_int, default=3, help="best configurations whose concurrency is swept (default 3)")
    s.add_argument("--no-concurrency-sweep", action="store_true", help="measure each configuration at its search concurrency only")
    add_protocol_argument(s)
    r = p.add_argument_group("remote launch (a running tritonserver in explicit model-control mode)")
    r.add_argument("--remote-http", help="host:port; with --remote-grpc and --remote-metrics: launch mode remote")
    r.add_argument("--remote-grpc", help="host:port")
    r.add_argument("--remote-metrics", help="metrics URL, e.g. http://host:8002/metrics")


def _remote(args: argparse.Namespace):
    from tritonize.errors import TuneError
    from tritonize.tune.analyzer_config import Endpoints

    given = (args.remote_http, args.remote_grpc, args.remote_metrics)
    if not any(given):
        return None
    if not all(given):
        raise TuneError("remote launch needs --remote-http, --remote-grpc and --remote-metrics together")
    return Endpoints(http=args.remote_http, grpc=args.remote_grpc, metrics_url=args.remote_metrics)


def run(args: argparse.Namespace) -> int:
    from tritonize.spec import Target
    from tritonize.tune.analyzer_config import Measurement
    from tritonize.tune.run import TuneOptions, run_tune
    from tritonize.tune.space import SearchBounds, SearchMode

    options = TuneOptions(
        model=args.model,
        repository=args.repository,
        target=Target(args.target) if args.target else None,
        mode=SearchMode(args.mode),
        latency_budget_ms=args.latency_budget_ms,
        spec=args.spec,
        out=args.out,
        measurement=Measurement(
            interval_ms=args.measurement_ms,
            max_concurrency=args.max_concurrency,
            top_configs=args.top_configs,
            concurrency_sweep=not args.no_concurrency_sweep,
            protocol=args.protocol,
        ),
        bounds=SearchBounds(max_instances=args.max_instances, max_python_batch=args.max_python_batch),
        perf_analyzer=args.perf_analyzer,
        corpus=args.corpus,
        remote=_remote(args),
        write_spec=args.write_spec,
    )
    result = run_tune(options, log=lambda line: print(f"  {line}", flush=True))
    print()
    print(result.summary_files[1].read_text(encoding="utf-8"))
    print(f"written: {', '.join(str(p) for p in result.summary_files)}; Model Analyzer's reports in {options.out / 'model_analyzer'}")
    if options.write_spec:
        print(result.spec_diff or "spec unchanged: the chosen configuration is the one it already has")
    return 0
