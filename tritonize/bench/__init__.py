"""``tritonize bench``: served throughput against its ceiling and its baselines, in one run.

On the same texts, one process measures (sequences per second), by row set:

* ``standard``: the classification deployment served by the embedded Triton over gRPC and
  HTTP, one text per request, at concurrency 1, 8 and 32 (closed loop, asyncio client); raw
  ONNX Runtime in-process on the same ``model.onnx``, pre-tokenized (batch 1 unpadded, batches
  of 8 and 32 sorted by length: the ceiling); the Hugging Face pipeline at batch 1 and 32; the
  deployment built with dynamic batching off at concurrency 32; p99 under an open-loop half
  load vs the p50 of one request at a time; a T5 deployment served vs ``model.generate``.
* ``overhead``: the deployment at saturation from several client processes (1 and 32 texts
  per request, both protocols) against the deployment's tokenizer alone and tokenizer + ONNX
  Runtime in-process, on the same texts: what serving adds around the engine.

Client, server and baselines share the machine's cores, as they would on one host: compare
the ratios measured in one run, not absolute numbers across runs (docs/performance.md).

Modules by role: :mod:`~tritonize.bench.rows` (typed row keys), :mod:`~tritonize.bench.cpu`
(CPU share), :mod:`~tritonize.bench.drivers` (load generators), :mod:`~tritonize.bench.baselines`,
:mod:`~tritonize.bench.repositories` (deployments, cached builds, servers),
:mod:`~tritonize.bench.goals`, :mod:`~tritonize.bench.report`, :mod:`~tritonize.bench.run`.
"""

from tritonize.bench.baselines import BenchError
from tritonize.bench.goals import evaluate_goals
from tritonize.bench.report import to_markdown, write_result
from tritonize.bench.rows import BenchResult, Load, Measurement, RowKey, RowPath, best_rows, percentile
from tritonize.bench.run import BenchConfig, run_bench

__all__ = [
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "Load",
    "Measurement",
    "RowKey",
    "RowPath",
    "best_rows",
    "evaluate_goals",
    "percentile",
    "run_bench",
    "to_markdown",
    "write_result",
]
