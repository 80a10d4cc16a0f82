"""Shared fixtures: one tiny demo repository and one embedded Triton server per test session.

The server is real (nvidia-pytriton's tritonserver); nothing is mocked. Demo checkpoints are
built into a per-session cache so every run exercises the whole build path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


def instance_count(config) -> int:
    """Instances (stub processes, for the Python backend) of a parsed model config: Triton
    starts one when ``instance_group`` is empty."""
    return sum(group.count for group in config.instance_group) or 1


def _has_pytriton() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytriton") is not None


@pytest.fixture(scope="session")
def tritonize_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache (demo checkpoints, backend dir, logs) unless TRITONIZE_TEST_CACHE is set."""
    preset = os.environ.get("TRITONIZE_TEST_CACHE")
    path = Path(preset) if preset else tmp_path_factory.mktemp("tritonize-cache")
    os.environ["TRITONIZE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def demo_repository(tmp_path_factory: pytest.TempPathFactory, tritonize_cache: Path) -> Path:
    """The tiny demo repository of the shipped spec, target embedded."""
    from tritonize.pipeline import BuildOptions, build
    from tritonize.spec import load_spec

    out = tmp_path_factory.mktemp("repo") / "model_repository"
    build(BuildOptions(spec=load_spec(), out=out, demo="tiny", cache_dir=tritonize_cache))
    return out


@dataclass
class RunningServer:
    http_url: str
    grpc_url: str
    metrics_url: str
    repository: Path
    admin_key: str
    server: object


def loopback_config(repository: Path):
    """A server config on free loopback ports, patient enough for a busy 2-core machine.

    Tests stop servers with requests in flight: a 5 s exit timeout (not Triton's 30 s) keeps them short.
    """
    from tritonize.server import ServerConfig, free_port

    return ServerConfig(
        repository=repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        start_timeout_s=180,
        exit_timeout_s=5,
    )


def _serve(repository: Path, cache: Path):
    """A running embedded server on free loopback ports (a generator fixtures yield from)."""
    if not _has_pytriton():
        pytest.skip("nvidia-pytriton (bundled tritonserver) is not installed")
    from tritonize.server import EmbeddedServer

    config = loopback_config(repository)
    server = EmbeddedServer(config, cache_dir=cache)
    server.start()
    yield RunningServer(
        http_url=server.http_url,
        grpc_url=server.grpc_url,
        metrics_url=server.metrics_url,
        repository=repository,
        admin_key=config.admin_key,
        server=server,
    )
    server.stop()


@pytest.fixture(scope="session")
def triton_server(demo_repository: Path, tritonize_cache: Path) -> RunningServer:
    yield from _serve(demo_repository, tritonize_cache)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests needing TensorRT or a GPU skip with the reason, never fail, on CPU machines."""
    try:
        import tensorrt  # noqa: F401

        has_trt = True
    except Exception:  # noqa: BLE001 - stub packages raise at import
        has_trt = False
    from tritonize.engines.local import gpus

    has_gpu = bool(gpus())  # NVML, as the engine build sees GPUs (device files differ between runtimes)
    for item in items:
        if item.get_closest_marker("tensorrt") and not has_trt:
            item.add_marker(pytest.mark.skip(reason="TensorRT (libnvinfer) is not installed on this machine"))
        if item.get_closest_marker("gpu") and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU on this machine"))


@pytest.fixture(scope="session")
def classifier_repository(demo_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo repository's classification deployment alone (fast to start, safe to break).

    Throwaway servers for fault, shutdown and TLS tests run on it, never the session server.
    """
    import json
    import shutil

    report = json.loads((demo_repository / "build_report.json").read_text())
    name = "distilbert_emotion"
    out = tmp_path_factory.mktemp("classifier") / "model_repository"
    out.mkdir()
    for config in report["models"][name]["configs"]:
        step = Path(config).parent.name
        shutil.copytree(demo_repository / step, out / step)
    (out / "build_report.json").write_text(json.dumps({**report, "models": {name: report["models"][name]}}))
    return out


@pytest.fixture(scope="session")
def single_instance_repository(tmp_path_factory: pytest.TempPathFactory, tritonize_cache: Path) -> Path:
    """The classifier with ONE instance of its Python step: a dead or stopped stub then takes the
    deployment down, the case the watchdog exists for. (The shipped spec runs two instances,
    and Triton routes requests around a dead one: see the stub-sigkill test on that repository.)"""
    from dataclasses import replace

    from tritonize.pipeline import BuildOptions, build
    from tritonize.spec import load_spec

    spec = load_spec()
    spec = spec.select(["distilbert_emotion"])
    spec = replace(spec, models=tuple(replace(m, python_instances=1) for m in spec.models))
    out = tmp_path_factory.mktemp("single-instance") / "model_repository"
    build(BuildOptions(spec=spec, out=out, demo="tiny", cache_dir=tritonize_cache))
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest's hook signature
    """Show the fault-injection figures (``record_property`` values starting with FAULT) after the run."""
    lines = [
        str(value)
        for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        for _, value in getattr(report, "user_properties", [])
        if str(value).startswith("FAULT")
    ]
    if lines:
        terminalreporter.section("fault injection: requests and recovery")
        for line in lines:
            terminalreporter.write_line(line)


# -- a throwaway server with tight limits (overload, deadlines) --------------------------------
CONSTRAINED_QUEUE = {"max_queue_size": 2, "queue_timeout_us": 20_000}  # distilbert_emotion: refuses bursts
SLOW_DELAY_US = 4_000_000  # distilbert_slow: the model step holds a lone request this long


@pytest.fixture(scope="session")
def constrained_repository(tmp_path_factory: pytest.TempPathFactory, tritonize_cache: Path) -> Path:
    """A repository built from a spec with tight limits, through the ordinary build path.

    ``distilbert_emotion``: every step's queue holds 2 requests and refuses those waiting over
    20 ms. ``distilbert_slow``: the same model whose dynamic batcher waits 4 s to fill a batch,
    so a lone request is slow on the server itself (not in the client).
    """
    import dataclasses

    from tritonize.pipeline import BuildOptions, build
    from tritonize.spec import ServerSpec, Spec, load_spec

    base = load_spec().get("distilbert_emotion")
    models = (
        dataclasses.replace(base, **CONSTRAINED_QUEUE),
        # unfused, so the engine step's batcher (max_queue_delay_us) holds the lone request
        dataclasses.replace(base, name="distilbert_slow", max_queue_delay_us=SLOW_DELAY_US, fuse_steps=False),
    )
    out = tmp_path_factory.mktemp("constrained") / "model_repository"
    # The autoscaler target must exceed every batcher delay (the spec checks it): above the slow one's.
    server = dataclasses.replace(ServerSpec(), queue_time_target_us=SLOW_DELAY_US + 1)
    build(BuildOptions(spec=Spec(models=models, server=server), out=out, demo="tiny", cache_dir=tritonize_cache))
    return out


@pytest.fixture(scope="session")
def constrained_server(constrained_repository: Path, tritonize_cache: Path) -> RunningServer:
    """A throwaway embedded server (free loopback ports) on :func:`constrained_repository`."""
    yield from _serve(constrained_repository, tritonize_cache)
