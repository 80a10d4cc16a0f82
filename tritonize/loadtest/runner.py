"""Run Locust headless against a Triton server and summarise client and server side.

Locust runs as a subprocess (``locust -f tritonize/loadtest/locustfiles/locustfile.py --headless ...``): ``import
locust`` monkey-patches the process with gevent, which must not happen to the caller (or to a
server started in-process). Before and after the run the server's statistics and metrics are
snapshotted; the summary works on the difference, so other traffic before the run does not count.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tritonize.errors import TritonizeError
from tritonize.extras import require
from tritonize.loadtest.distributed import WORKER_LOG, locust_workers
from tritonize.loadtest.gates import Gates
from tritonize.loadtest.metrics import fetch_statistics, metrics_delta, scrape_metrics, stats_delta
from tritonize.loadtest.payload import DEFAULT_MODEL, corpus_texts
from tritonize.loadtest.plot import load_start, plot_history, plot_resources, read_history
from tritonize.loadtest.resources import ResourceSampler, find_listener_pid, summarize, write_csv
from tritonize.loadtest.soak import SoakPlan
from tritonize.loadtest.summary import LoadtestSummary, read_locust_stats
from tritonize.urls import PROTOCOLS, default_url

logger = logging.getLogger(__name__)

USER_CLASSES = {"grpc": "TritonGrpcUser", "http": "TritonHttpUser"}
CSV_PREFIX = "locust"
LOG_FILE = "locust.log"
_RUN_TIME = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class LoadtestError(TritonizeError, RuntimeError):
    """A load test could not run or produced no results; the message carries Locust's log tail."""


LOCUST_MODULES = ("locust", "psutil")  # what a run imports: in the Locust subprocess, and to sample memory
LOCUSTFILES = "tritonize.loadtest.locustfiles"  # the package holding the locustfiles Locust loads


def packaged_locustfile(name: str) -> Path:
    """A locustfile shipped in :mod:`tritonize.loadtest.locustfiles`, as a file Locust can load.

    Found through :mod:`importlib.resources`, so a wheel installed anywhere finds it; an
    installation that is not plain files (a zip import) gets a path that fails
    :class:`LoadtestConfig`'s "not found" check instead of a broken Locust run.
    """
    return Path(str(resources.files(LOCUSTFILES).joinpath(name)))


def default_locustfile() -> Path:
    """The packaged ``locustfile.py`` (the users ``loadtest/locustfile.py`` of a checkout imports)."""
    return packaged_locustfile("locustfile.py")


def default_shape_file() -> Path:
    """The packaged ``soak_shape.py`` (the soak ``LoadTestShape``), loaded beside the locustfile."""
    return packaged_locustfile("soak_shape.py")


def parse_run_time(run_time: str) -> float:
    """Seconds of a Locust ``--run-time`` value (``20``, ``20s``, ``1m30s``, ``1h``).

    Raises:
        LoadtestError: the value is not a duration.
    """
    text = run_time.strip()
    if text.isdigit():
        return float(text)
    match = _RUN_TIME.match(text)
    if not text or not match:
        raise LoadtestError(f"run time {run_time!r} is not a duration like 20s, 1m30s or 1h")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


@dataclass(frozen=True, kw_only=True)
class LoadtestConfig:
    """One headless Locust run. ``url`` is the protocol's ``host:port`` (default: Triton's port)."""

    out: Path
    model: str = DEFAULT_MODEL
    protocol: str = "grpc"
    users: int = 8
    workers: int = 0  # Locust worker processes on this machine under a headless master; 0: one process
    spawn_rate: float = 8.0
    run_time: str = "20s"
    texts_per_request: int = 1
    corpus: Path | None = None
    url: str | None = None
    metrics_url: str | None = None
    request_timeout: float = 30.0
    admin_key: str | None = None  # for the statistics endpoint of a `tritonize serve` server
    inference_key: str | None = None  # for a server that puts inference behind a key; reaches Locust by environment
    locustfile: Path = field(default_factory=default_locustfile)
    progress: bool = True
    soak: SoakPlan | None = None  # None: steady --users for --run-time; else ramp/hold/spike/recover
    shape_file: Path = field(default_factory=default_shape_file)
    gates: Gates = field(default_factory=Gates)
    server_pid: int | None = None  # whose memory to sample; None: the process listening on the URL's port
    sample_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise LoadtestError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.users < 1 or self.spawn_rate <= 0 or self.texts_per_request < 1:
            raise LoadtestError("users and texts per request must be >= 1 and the spawn rate > 0")
        if self.workers < 0:
            raise LoadtestError(f"workers must be >= 0 (0: no master/worker split), got {self.workers}")
        if parse_run_time(self.run_time) <= 0:
            raise LoadtestError(f"run time must be positive, got {self.run_time!r}")
        if self.corpus is not None and not self.corpus.is_file():
            raise LoadtestError(f"corpus file not found: {self.corpus}")
        if not self.locustfile.is_file():
            raise LoadtestError(f"locustfile not found: {self.locustfile} (pass --locustfile)")
        if self.soak is not None and not self.shape_file.is_file():
            raise LoadtestError(f"soak shape file not found: {self.shape_file}")
        if self.sample_interval_s <= 0:
            raise LoadtestError(f"sample interval must be > 0 s, got {self.sample_interval_s}")

    @property
    def duration_s(self) -> float:
        """How long Locust generates load: the soak plan's length, else ``run_time``."""
        return self.soak.total_s if self.soak is not None else parse_run_time(self.run_time)

    @property
    def target_url(self) -> str:
        return self.url or default_url(self.protocol)

    @property
    def target_metrics_url(self) -> str:
        return self.metrics_url or default_url("metrics")


def locust_environment(config: LoadtestConfig) -> dict[str, str]:
    """This process's environment plus the inference key: a secret goes to Locust by environment,
    never in its argument list (which ``ps`` shows and the log records)."""
    from tritonize.server import INFERENCE_KEY_ENV

    env = dict(os.environ)
    if config.inference_key:
        env[INFERENCE_KEY_ENV] = config.inference_key
    return env


def locust_command(config: LoadtestConfig) -> list[str]:
    """The argument list of the headless Locust subprocess (never a split string)."""
    out = config.out.resolve()  # Locust runs with --out as its working directory
    prefix = out / CSV_PREFIX
    if config.soak is None:
        files = str(config.locustfile.resolve())
        load = ["--users", str(config.users), "--spawn-rate", str(config.spawn_rate), "--run-time", config.run_time]
    else:  # the shape drives users and duration; Locust ignores -u/-r/-t with a shape
        files = f"{config.locustfile.resolve()},{config.shape_file.resolve()}"
        load = config.soak.locust_args()
    command = [
        sys.executable, "-m", "locust",
        "-f", files,
        "--headless",
        "--host", f"{config.protocol}://{config.target_url}",
        *load,
        "--stop-timeout", "10",  # let in-flight requests finish, so client and server counts agree
        "--csv", str(prefix),
        "--csv-full-history",
        "--json-file", str(prefix),  # final numbers at exit (the CSV lags by up to a second)
        "--html", str(out / "report.html"),
        "--only-summary",
        "--triton-model", config.model,
        "--triton-batch", str(config.texts_per_request),
        "--triton-timeout", str(config.request_timeout),
    ]  # fmt: skip
    if config.corpus:
        command += ["--corpus", str(config.corpus.resolve())]
    return [*command, USER_CLASSES[config.protocol]]


def _progress_line(history_csv: Path, elapsed: float, total: float) -> str:
    rows = read_history(history_csv) if history_csv.exists() else []
    last = rows[-1] if rows else None
    if last is None or not last["users"]:
        return f"[{elapsed:4.0f}s/{total:.0f}s] starting locust..."
    latency = "" if math.isnan(last["p50"]) else f"  p50 {last['p50']:.0f} ms  p95 {last['p95']:.0f} ms"
    return f"[{elapsed:4.0f}s/{total:.0f}s] users {last['users']:.0f}  {last['rps']:.1f} req/s{latency}"


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """SIGINT the Locust process group (Locust writes its CSVs on SIGINT), then kill."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait(process: subprocess.Popen, config: LoadtestConfig, log: Path) -> int:
    total = config.duration_s
    deadline = time.monotonic() + total + 60  # start-up, stop timeout, report writing
    history = config.out / f"{CSV_PREFIX}_stats_history.csv"
    start = time.monotonic()
    tty = sys.stderr.isatty()
    last_print = 0.0
    while process.poll() is None:
        now = time.monotonic()
        if now > deadline:
            _stop(process)
            raise LoadtestError(f"locust did not finish within {total + 60:.0f} s; log tail:\n{_log_tail(log)}")
        if config.progress and (tty or now - last_print >= 5):
            line = _progress_line(history, min(now - start, total), total)
            print(f"\r{line:<80}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            last_print = now
        time.sleep(1.0)
    if config.progress and tty:
        print(file=sys.stderr)
    return process.returncode


def run_locust(config: LoadtestConfig) -> Path:
    """Run Locust headless; return the ``_stats.csv`` path.

    Raises:
        LoadtestError: Locust failed to start, ran over time, or wrote no statistics.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    log = config.out / LOG_FILE
    env = locust_environment(config)
    with (
        log.open("w", encoding="utf-8") as log_handle,
        locust_workers(locust_command(config), config.workers, config.out, env) as command,
    ):
        logger.info("running %s", " ".join(command))
        process = subprocess.Popen(
            command, stdout=log_handle, stderr=subprocess.STDOUT, cwd=config.out, env=env, start_new_session=True
        )
        try:
            returncode = _wait(process, config, log)
        except BaseException:
            if process.poll() is None:
                _stop(process)
            raise
    stats_csv = config.out / f"{CSV_PREFIX}_stats.csv"
    # Locust exits 1 when any request failed; that is a result, not a crash.
    if returncode not in (0, 1) or not stats_csv.exists() or not (config.out / f"{CSV_PREFIX}.json").exists():
        workers = f" (workers log to {config.out / WORKER_LOG.format(index='*')})" if config.workers else ""
        raise LoadtestError(f"locust exited with {returncode}{workers}; log tail:\n{_log_tail(log)}")
    return stats_csv


def run_loadtest(config: LoadtestConfig) -> LoadtestSummary:
    """Snapshot server counters, run Locust, snapshot again; write summary JSON/Markdown and a plot.

    Raises:
        MissingExtraError: Locust or psutil is not installed (the ``loadtest`` extra).
        ServerUnavailableError: nothing answers at ``config.url`` (checked before Locust starts).
        CorpusError: the corpus file is malformed.
        LoadtestError: Locust failed.
    """
    require(*LOCUST_MODULES)
    corpus_texts(config.corpus)  # a malformed corpus fails here, naming file and line, not in every user
    url = config.target_url
    before = fetch_statistics(url, config.protocol, admin_key=config.admin_key)
    metrics_before = scrape_metrics(config.target_metrics_url)
    port = int(url.rpartition(":")[2])
    pid = config.server_pid or find_listener_pid(port)
    sampler = None
    if pid is None:
        logger.warning("no server process found listening at %s: memory is not sampled", url)
        stats_csv = run_locust(config)
    else:
        with ResourceSampler(pid, config.sample_interval_s, port=port) as sampler:
            stats_csv = run_locust(config)
    after = fetch_statistics(url, config.protocol, admin_key=config.admin_key)
    metrics_after = scrape_metrics(config.target_metrics_url)

    files = {
        "summary_json": str(config.out / "summary.json"),
        "summary_md": str(config.out / "summary.md"),
        "locust_stats": str(stats_csv),
        "locust_json": str(config.out / f"{CSV_PREFIX}.json"),
        "html": str(config.out / "report.html"),
        "log": str(config.out / LOG_FILE),
    }
    history = config.out / f"{CSV_PREFIX}_stats_history.csv"
    if history.exists():
        files["history"] = str(history)
        png = plot_history(history, config.out / "throughput_latency.png", f"{config.model} / {config.protocol}")
        if png:
            files["plot"] = str(png)
    resources = None
    if sampler is not None:
        windows = config.soak.growth_windows(config.sample_interval_s) if config.soak is not None else None
        start = load_start(history) if history.exists() else None
        resources = summarize(sampler.samples, pid, config.sample_interval_s, windows, start)
        files["resources"] = str(write_csv(sampler.samples, config.out / "resources.csv"))
        png = plot_resources(sampler.samples, config.out / "resources.png", f"{config.model}: server resources", resources)
        if png:
            files["resources_plot"] = str(png)
    client = read_locust_stats(config.out / CSV_PREFIX)
    summary = LoadtestSummary(
        model=config.model,
        protocol=config.protocol,
        url=url,
        users=config.users,
        spawn_rate=config.spawn_rate,
        run_time=config.run_time,
        texts_per_request=config.texts_per_request,
        client=client,
        server=stats_delta(before, after),
        metrics=metrics_delta(metrics_before, metrics_after),
        files=files,
        shape=_shape(config.soak),
        resources=resources,
        gates=config.gates.evaluate(client, resources),
    )
    summary.write(config.out)
    return summary


def _shape(plan: SoakPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {"name": "soak", "total_s": plan.total_s, "phases": [asdict(p) for p in plan.phases()]}


@contextlib.contextmanager
def started_server(repository: Path) -> Iterator[Any]:
    """An embedded Triton server on free local ports for the duration of a load test.

    Raises:
        ServerError: the server did not start (its log tail is in the message).
    """
    from tritonize.server import EmbeddedServer, ServerConfig, free_port

    config = ServerConfig(
        repository=Path(repository), http_port=free_port(), grpc_port=free_port(), metrics_port=free_port()
    )
    with EmbeddedServer(config) as server:
        yield server


def run_with_server(config: LoadtestConfig, repository: Path) -> LoadtestSummary:
    """Start an embedded server on ``repository``, run :func:`run_loadtest` against it, stop it.

    Raises:
        MissingExtraError: Locust or psutil is not installed (checked before the server starts).
    """
    require(*LOCUST_MODULES)
    with started_server(repository) as server:
        url = server.grpc_url if config.protocol == "grpc" else server.http_url
        pid = server.process.pid if server.process is not None else None
        return run_loadtest(
            replace(
                config,
                url=url,
                metrics_url=server.metrics_url,
                server_pid=pid,
                admin_key=server.config.admin_key,
                inference_key=server.config.client_inference_key,
            )
        )
