"""One ``tritonize tune`` run: search space -> Model Analyzer config -> ``model-analyzer profile`` ->
summary -> (optionally) the chosen values written back to the spec.

Local launch is the one that works against the embedded target: Model Analyzer starts the
bundled tritonserver itself (same binary, backend directory and environment as ``tritonize
serve``) on its output model repository, in explicit model-control mode, and loads one variant
at a time. Remote launch against ``tritonize serve`` does not work, for two reasons seen with
Model Analyzer 1.58: its Triton client sends no headers, so the restricted model-repository API
refuses it (``This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'``);
and with ``--open-admin-apis`` the serve watchdog takes Model Analyzer's variant reloads for
dead stubs and reloads the repository's own config over them (perf_analyzer then fails with
``'<deployment>' has no available versions``). Remote launch is what the GPU server's ``tune``
service uses, against a plain tritonserver started for tuning (:mod:`tritonize.deploy.tune`).

Model Analyzer writes variants into its own output repository and never edits the model
repository; neither does this: the only file it may change is the spec, with ``write_spec``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tritonize.errors import TritonizeError, TuneError
from tritonize.provenance import git_state, machine, typed_command
from tritonize.spec import DEFAULT_SPEC, Target, load_spec
from tritonize.tune.analyzer_config import Endpoints, LocalLaunch, Measurement, Paths, RemoteLaunch, analyzer_config
from tritonize.tune.results import TuneSummary, summarize, write_summary
from tritonize.tune.space import SearchBounds, SearchMode, SearchSpace, search_space
from tritonize.tune.tools import (
    check_perf_analyzer,
    find_perf_analyzer,
    model_analyzer_command,
    perf_analyzer_library_dirs,
)

logger = logging.getLogger(__name__)
Log = Callable[[str], None]
QUIET_PREFIXES = ("WARNING: No GPU metric", "WARNING: GPU output field", "WARNING: Server output field")


@dataclass(frozen=True, kw_only=True)
class TuneOptions:
    """What ``tritonize tune`` searches, where, and what it may change.

    ``remote``: endpoints of a running tritonserver (explicit model control, model-repository and
    statistics APIs open) instead of a local launch of the bundled one. ``spec``: the spec file the
    repository was built from, and the one ``write_spec`` edits (default: the shipped one).
    """

    model: str
    repository: Path = Path("model_repository")
    target: Target | None = None  # None: the target the repository was built for
    mode: SearchMode = SearchMode.QUICK
    latency_budget_ms: float | None = None
    spec: Path | None = None
    out: Path = Path("artifacts/tune")
    measurement: Measurement = field(default_factory=Measurement)
    bounds: SearchBounds = field(default_factory=SearchBounds)
    perf_analyzer: Path | None = None
    corpus: Path | None = None
    texts: int = 256
    remote: Endpoints | None = None
    write_spec: bool = False
    timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.latency_budget_ms is not None and not self.latency_budget_ms >= 1:
            raise TuneError(f"--latency-budget-ms must be >= 1 (Model Analyzer takes whole milliseconds), got {self.latency_budget_ms}")
        if self.texts < 1:
            raise TuneError(f"--texts must be >= 1, got {self.texts}")


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    summary: TuneSummary
    summary_files: tuple[Path, Path]
    config_file: Path
    spec_diff: str = ""


def spec_file(path: Path | None) -> Path:
    """The spec file to read and edit: ``path``, or the shipped ``tritonize/models.toml``."""
    if path is not None:
        return path
    from importlib import resources

    shipped = Path(str(resources.files("tritonize").joinpath(DEFAULT_SPEC)))
    if not shipped.is_file():
        raise TuneError("the shipped spec is not a file on disk here; pass --spec")
    return shipped


def _repository_target(repository: Path, deployment: str) -> Target:
    from tritonize.repository.report import ReportError, read_report

    try:
        report = read_report(repository)
    except ReportError as exc:
        raise TuneError(f"{exc} (build it: tritonize build --model {deployment})") from exc
    if deployment not in report.models:
        raise TuneError(f"{repository} has no deployment {deployment!r} (build it: tritonize build --model {deployment})")
    return report.target


def _check_steps(space: SearchSpace, repository: Path, remote: bool) -> None:
    """Every step the search varies exists in the repository (it was built from this spec and target)."""
    if remote:
        return  # the server's repository may live elsewhere; Model Analyzer reports a missing model itself
    missing = [s.model for s in space.steps if not (repository / s.model / "config.pbtxt").is_file()]
    if missing:
        raise TuneError(
            f"{repository} lacks {missing}: it was built from another spec or target than the search "
            f"({space.target.value}); rebuild it with the same --spec and --target"
        )


def _launch(options: TuneOptions, perf_analyzer: Path) -> tuple[LocalLaunch | RemoteLaunch, dict[str, str]]:
    """The launch section and the environment Model Analyzer (and so perf_analyzer) runs in."""
    from tritonize.cache import default_cache_dir
    from tritonize.server import free_port, prepare_backend_dir, server_env, tritonserver_binary

    env = server_env()
    libs = perf_analyzer_library_dirs(perf_analyzer)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH", ""), *libs) if p)
    if options.remote is not None:
        return RemoteLaunch(endpoints=options.remote, environment={"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]} if libs else {}), env
    http, grpc, metrics = free_port(), free_port(), free_port()
    launch = LocalLaunch(
        server_path=tritonserver_binary(),
        backend_dir=prepare_backend_dir(default_cache_dir()),
        environment={"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"], "PATH": env["PATH"]},
        endpoints=Endpoints(http=f"localhost:{http}", grpc=f"localhost:{grpc}", metrics_url=f"http://localhost:{metrics}/metrics"),
    )
    return launch, env


def _fresh(out: Path, paths: Paths) -> None:
    """A run starts from scratch: Model Analyzer would resume from an earlier run's checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (paths.checkpoints, paths.export, paths.variants):
        shutil.rmtree(stale, ignore_errors=True)


def _write_input(paths: Paths, corpus: Path | None, count: int) -> None:
    from tritonize.loadtest.payload import corpus_texts, perf_analyzer_input

    pool = corpus_texts(corpus)
    texts = [pool[i % len(pool)] for i in range(min(count, max(len(pool), 1)))]
    paths.input_data.write_text(json.dumps(perf_analyzer_input(texts)), encoding="utf-8")


def _run_model_analyzer(config_file: Path, env: dict[str, str], paths: Paths, timeout_s: float, log: Log) -> None:
    """``model-analyzer profile -f CONFIG``, its output in ``model_analyzer.log`` and its progress lines in ``log``.

    Model Analyzer runs in a process group of its own; when it overruns ``timeout_s`` or the user
    interrupts, the group is stopped and so is the tritonserver it launched (which it starts in a
    session of its own and leaves running when stopped itself).
    """
    command = [*model_analyzer_command(), "profile", "-f", str(config_file)]
    log_path = paths.out / "model_analyzer.log"
    deadline = time.monotonic() + timeout_s
    with log_path.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=config_file.parent,
            start_new_session=True,
        )  # fmt: skip
        try:
            _follow(process, sink, deadline, log)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()
                _stop_servers_on(paths.variants)
    if time.monotonic() > deadline:
        raise TuneError(f"Model Analyzer ran past {timeout_s:.0f} s and was stopped; log {log_path}")
    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise TuneError(f"Model Analyzer failed (exit {process.returncode}): {tail[0] if tail else ''}; log {log_path}")


def _follow(process: subprocess.Popen[str], sink: Any, deadline: float, log: Log) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sink.write(line)
        text = line.removeprefix("[Model Analyzer] ").rstrip()
        if text and line.startswith("[Model Analyzer]") and not text.startswith(QUIET_PREFIXES):
            log(text)
        if time.monotonic() > deadline:
            return
    process.wait()


def _stop_servers_on(variants: Path) -> None:
    """Stop tritonservers serving ``variants`` (Model Analyzer's local launch), their stubs and shm with them."""
    from tritonize.serving.processes import cleanup_after_server, process_state

    needle = f"--model-repository {variants}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"tritonserver" in cmdline and needle in cmdline:
            pid = int(proc.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if process_state(pid) in (None, "Z"):
                    break
                time.sleep(0.1)
            with contextlib.suppress(TritonizeError):
                cleanup_after_server(pid, set())


def _context(options: TuneOptions, space: SearchSpace, pa_version: str, launch: str, load_start: float) -> dict[str, Any]:
    """Where and how the run was measured (the summary carries it: figures depend on the machine)."""
    try:
        analyzer = metadata.version("triton-model-analyzer")
    except metadata.PackageNotFoundError:
        analyzer = "unknown"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),  # CPU model and SIMD flags, cores, GPUs: what the figures depend on
        "load_average_start": round(load_start, 2),  # other work on the machine competes with the measurement
        "load_average_end": round(os.getloadavg()[0], 2),
        "model_analyzer": analyzer,
        "perf_analyzer": pa_version,
        "launch_mode": launch,
        "profiled_model": space.profiled,
        "measurement_interval_ms": options.measurement.interval_ms,
        "max_concurrency": options.measurement.max_concurrency,
        "protocol": options.measurement.protocol,
    }


def run_tune(options: TuneOptions, log: Log = logger.info) -> TuneResult:
    """Search, summarise, and with ``write_spec`` edit the spec; returns what was found.

    Raises:
        TuneError: a tool is missing or failed, or no configuration met the latency budget (the
            summary is written first). SpecError: the spec is invalid.
    """
    spec_path = spec_file(options.spec)
    spec = load_spec(spec_path)
    model = spec.get(options.model)
    built_for = _repository_target(options.repository, model.name) if options.remote is None else None
    target = options.target or built_for or Target.EMBEDDED
    if built_for is not None and target is not built_for:
        raise TuneError(f"{options.repository} was built for --target {built_for.value}, not {target.value}")
    space = search_space(model, target, options.mode, server=spec.server, bounds=options.bounds)
    _check_steps(space, options.repository, options.remote is not None)
    perf_analyzer = find_perf_analyzer(options.perf_analyzer)
    launch, env = _launch(options, perf_analyzer)
    pa_version = check_perf_analyzer(perf_analyzer, env)
    out = options.out.resolve()
    paths = Paths(repository=options.repository.resolve(), out=out, input_data=out / "input_data.json", perf_analyzer=perf_analyzer)
    _fresh(out, paths)
    _write_input(paths, options.corpus, options.texts)
    config = analyzer_config(space, launch, paths, options.measurement, latency_budget_ms=options.latency_budget_ms)
    from tritonize.deploy import yaml_io

    header = f"Model Analyzer profile config generated by `tritonize tune --model {model.name}` from {spec_path}."
    yaml_io.write(paths.config_file, yaml_io.dump(config, header))
    launch_mode = config["triton_launch_mode"]
    log(f"Model Analyzer {options.mode.value} search of {model.name} ({target.value}, {launch_mode} launch): {paths.config_file}")
    load_start = os.getloadavg()[0]
    _run_model_analyzer(paths.config_file, env, paths, options.timeout_s, log)
    context = _context(options, space, pa_version, launch_mode, load_start)
    summary = summarize(space, paths.export, paths.variants, options.latency_budget_ms, context)
    summary = dataclasses.replace(summary, command=typed_command(), git=git_state())
    files = write_summary(summary, out)
    if summary.chosen is None:
        why = f"met the latency budget of {options.latency_budget_ms:g} ms" if options.latency_budget_ms else "was measured"
        raise TuneError(f"no configuration {why}; see {files[1]} and {out / 'model_analyzer.log'}")
    diff = ""
    if options.write_spec:
        from tritonize.tune.writeback import write_back

        diff = write_back(spec_path, model.name, summary.chosen_values)
        (out / "spec.diff").write_text(diff, encoding="utf-8")
    return TuneResult(summary=summary, summary_files=files, config_file=paths.config_file, spec_diff=diff)
