"""Model Analyzer's ``profile`` YAML, generated from a :class:`~tritonize.tune.space.SearchSpace`.

The search space is data: this module turns it into the config file Model Analyzer reads (keys
as documented in ``model_analyzer`` 1.58 ``docs/config.md`` and checked by its own parser in the
tests), so a run can be repeated, reviewed or handed to Model Analyzer elsewhere by hand.

Launch modes (``docs/launch_modes.md``): ``local`` starts the tritonserver named here on the
output model repository in explicit model-control mode; ``remote`` loads each variant into a
running server through the model-repository API. Model Analyzer's Triton client sends no
extra headers, so a remote server must leave that API (and statistics) unrestricted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.repository.triton_config import KIND_CPU
from tritonize.tune.space import SearchMode, SearchSpace, StepSearch
from tritonize.urls import Protocol

# perf_analyzer stability on a shared machine: the default (10 % over 3 windows) often never
# converges on 2 busy cores, the same reason loadtest/perf_analyzer.sh loosens it.
STABILITY_PERCENTAGE = 50
MAX_TRIALS = 5
MAX_AUTO_ADJUSTS = 3  # Model Analyzer widens a failing window this many times, then moves on
OBJECTIVE = "perf_throughput"
LATENCY_CONSTRAINT = "perf_latency_p99"


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Where the Triton Model Analyzer measures answers (``host:port``; metrics as a URL)."""

    http: str
    grpc: str
    metrics_url: str


@dataclass(frozen=True, kw_only=True)
class LocalLaunch:
    """Model Analyzer starts this tritonserver itself (the bundled one: its backend dir and environment)."""

    server_path: Path
    backend_dir: Path
    environment: dict[str, str]
    endpoints: Endpoints


@dataclass(frozen=True, kw_only=True)
class RemoteLaunch:
    """A tritonserver someone else runs, in explicit model-control mode, model-repository API open."""

    endpoints: Endpoints
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """How perf_analyzer measures one configuration, and how many Model Analyzer sweeps afterwards.

    ``interval_ms``: one time window; ``max_concurrency`` bounds every concurrency tried;
    ``top_configs``: the best configurations whose concurrency Model Analyzer then sweeps
    (``concurrency_sweep`` off: each is measured at the concurrency its search step chose).
    """

    interval_ms: int = 3000
    max_concurrency: int = 64
    top_configs: int = 3
    concurrency_sweep: bool = True
    protocol: str = Protocol.GRPC.value
    timeout_s: int = 300


@dataclass(frozen=True, kw_only=True)
class Paths:
    """Everything a run reads or writes, all under the output directory except the repository."""

    repository: Path
    out: Path
    input_data: Path
    perf_analyzer: Path

    @property
    def export(self) -> Path:
        return self.out / "model_analyzer"

    @property
    def variants(self) -> Path:
        return self.out / "output_model_repository"

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    @property
    def config_file(self) -> Path:
        return self.out / "model_analyzer.yaml"

    @property
    def triton_log(self) -> Path:
        return self.out / "tritonserver.log"


def _instance_group(step: StepSearch) -> list[dict[str, Any]]:
    return [{"kind": step.kind, "count": list(step.instance_counts)}]


def _quick_models(space: SearchSpace) -> dict[str, Any]:
    """The ensemble, and its composing steps' instance counts (the only per-step range quick mode takes)."""
    composing = {s.model: {"model_config_parameters": {"instance_group": _instance_group(s)}} for s in space.steps}
    low, high = space.batch_clamp
    cpu_only = [s.model for s in space.steps if s.kind == KIND_CPU]
    return {
        "profile_models": [space.profiled],
        "ensemble_composing_models": composing,
        **({"cpu_only_composing_models": cpu_only} if cpu_only else {}),
        "run_config_search_min_model_batch_size": low,
        "run_config_search_max_model_batch_size": high,
    }


def _brute_models(space: SearchSpace, input_shapes: tuple[str, ...]) -> dict[str, Any]:
    """The batching step alone, with the cross product of every list (manual brute search)."""
    (step,) = space.steps
    batching: dict[str, Any] = {"max_queue_delay_microseconds": list(step.queue_delays_us)}
    if step.preferred:
        batching["preferred_batch_size"] = [list(p) for p in step.preferred]
    model: dict[str, Any] = {
        "model_config_parameters": {
            "max_batch_size": list(step.max_batch_sizes),
            "instance_group": _instance_group(step),
            "dynamic_batching": batching,
        }
    }
    if step.kind == KIND_CPU:
        model["cpu_only"] = True
    if input_shapes:  # an engine step takes token ids: zeros of a fixed bucket length
        model["perf_analyzer_flags"] = {"input-data": "zero", "shape": list(input_shapes)}
    return {"profile_models": {step.model: model}}


def _launch(launch: LocalLaunch | RemoteLaunch, paths: Paths) -> dict[str, Any]:
    endpoints = launch.endpoints
    common = {
        "triton_http_endpoint": endpoints.http,
        "triton_grpc_endpoint": endpoints.grpc,
        "triton_metrics_url": endpoints.metrics_url,
    }
    if isinstance(launch, RemoteLaunch):
        return {"triton_launch_mode": "remote", **common, **_environment(launch.environment)}
    return {
        "triton_launch_mode": "local",
        **common,
        "triton_server_path": str(launch.server_path),
        "triton_server_flags": {"backend_directory": str(launch.backend_dir), "strict_readiness": "true"},
        "triton_output_path": str(paths.triton_log),
        **_environment(launch.environment),
    }


def _environment(environment: dict[str, str]) -> dict[str, Any]:
    """``triton_server_environment``: Model Analyzer hands it to tritonserver and to perf_analyzer alike."""
    return {"triton_server_environment": dict(environment)} if environment else {}


def analyzer_config(
    space: SearchSpace,
    launch: LocalLaunch | RemoteLaunch,
    paths: Paths,
    measurement: Measurement = Measurement(),
    *,
    latency_budget_ms: float | None = None,
    input_shapes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Model Analyzer's profile config as plain data (write it with :func:`tritonize.deploy.yaml_io.dump`).

    ``input_shapes``: perf_analyzer ``--shape`` values when the profiled model takes token ids
    (brute mode on an unfused deployment) instead of text from ``paths.input_data``.
    """
    pa_flags: dict[str, Any] = {
        "measurement-mode": "time_windows",
        "measurement-interval": str(measurement.interval_ms),
        "stability-percentage": str(STABILITY_PERCENTAGE),
        "max-trials": str(MAX_TRIALS),
    }
    if not input_shapes:
        pa_flags["input-data"] = str(paths.input_data)
    models = _quick_models(space) if space.mode is SearchMode.QUICK else _brute_models(space, input_shapes)
    instances = [n for s in space.steps for n in s.instance_counts]
    config: dict[str, Any] = {
        "model_repository": str(paths.repository),
        "output_model_repository_path": str(paths.variants),
        "override_output_model_repository": True,
        "checkpoint_directory": str(paths.checkpoints),
        "export_path": str(paths.export),
        **_launch(launch, paths),
        "perf_analyzer_path": str(paths.perf_analyzer),
        "perf_analyzer_flags": pa_flags,
        "perf_analyzer_timeout": measurement.timeout_s,
        "perf_analyzer_max_auto_adjusts": MAX_AUTO_ADJUSTS,
        "client_protocol": measurement.protocol,
        "collect_cpu_metrics": True,
        "run_config_search_mode": space.mode.value,
        "run_config_search_min_instance_count": min(instances),
        "run_config_search_max_instance_count": max(instances),
        "run_config_search_max_concurrency": measurement.max_concurrency,
        "num_configs_per_model": measurement.top_configs,
        "concurrency_sweep_disable": not measurement.concurrency_sweep,
        "objectives": {OBJECTIVE: 10},
        **models,
    }
    if latency_budget_ms is not None:
        config["constraints"] = {LATENCY_CONSTRAINT: {"max": int(latency_budget_ms)}}
    return config
