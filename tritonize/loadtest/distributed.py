"""Locust's own distributed mode on this machine: one headless master and N worker processes.

Why: a Locust process is one Python interpreter, so it drives at most one core (gevent), and
a load generator that saturates its core measures itself, not the server. Locust's master /
worker split is the engine's own answer: the master hands users to the workers and merges the
statistics they report, so the master's CSV / JSON files are the whole run's numbers and the
summary is built from them exactly as for a single process.

The master binds 127.0.0.1 only; workers on other machines are started by hand against a
master that binds a reachable address (see README "Scale out").
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

MASTER_HOST = "127.0.0.1"
EXPECT_WORKERS_MAX_WAIT_S = 60  # the master gives up (and exits non-zero) if the workers do not connect
WORKER_LOG = "locust-worker-{index}.log"
WORKER_EXIT_S = 5.0  # after the master quits, workers (told to quit by it) exit by themselves


def master_options(workers: int, port: int) -> list[str]:
    """Locust flags that make the headless run a master waiting for ``workers`` workers on ``port``."""
    return [
        "--master",
        "--master-bind-host", MASTER_HOST,
        "--master-bind-port", str(port),
        "--expect-workers", str(workers),
        "--expect-workers-max-wait", str(EXPECT_WORKERS_MAX_WAIT_S),
    ]  # fmt: skip


def worker_command(locustfiles: str, port: int) -> list[str]:
    """One worker process: the master's ``-f`` files; users, host and ``--triton-*`` options come from the master."""
    return [
        sys.executable, "-m", "locust",
        "-f", locustfiles,
        "--worker",
        "--master-host", MASTER_HOST,
        "--master-port", str(port),
    ]  # fmt: skip


def _stop(processes: list[subprocess.Popen]) -> None:
    """Give workers time to quit on the master's word; then SIGINT, then SIGKILL, each by its own group."""
    deadline = time.monotonic() + WORKER_EXIT_S
    for sig in (None, signal.SIGINT, signal.SIGKILL):
        for process in processes:
            if sig is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        if all(process.poll() is not None for process in processes):
            return
        deadline = time.monotonic() + 5.0


@contextlib.contextmanager
def locust_workers(
    command: list[str], workers: int, out: Path, env: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """Start ``workers`` worker processes for the headless Locust ``command``; yield the master's command.

    ``workers == 0`` yields ``command`` unchanged (one Locust process, as before). Worker logs go
    to ``out/locust-worker-<i>.log``; every worker is stopped when the block ends, however it ends.
    ``env`` is the workers' environment (default: this process's), as the master gets it.
    """
    if workers == 0:
        yield command
        return
    from tritonize.server import free_port

    port = free_port(MASTER_HOST)
    locustfiles = command[command.index("-f") + 1]
    processes: list[subprocess.Popen] = []
    try:
        for index in range(workers):
            with (out / WORKER_LOG.format(index=index)).open("w", encoding="utf-8") as log:
                processes.append(
                    subprocess.Popen(
                        worker_command(locustfiles, port),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=out,
                        env=env,
                        start_new_session=True,
                    )
                )
        logger.info("started %d Locust workers for the master on %s:%d", workers, MASTER_HOST, port)
        yield [*command, *master_options(workers, port)]
    finally:
        _stop(processes)
