#!/usr/bin/env python3
"""The long soak: each deployment served by `tritonize serve` (supervisor on, the spec's queues),
loaded by `tritonize loadtest --shape soak`, one after the other; JSON results and plots.

    .venv/bin/python scripts/soak.py --hold 30m                      # all three, 30 min hold each
    .venv/bin/python scripts/soak.py --hold 2m --only classifier-tiny  # a quick look
    .venv/bin/python scripts/soak.py --report                        # Markdown table of the results

For every deployment it builds the demo repository (once, kept in --work), starts the server on
free loopback ports, runs the soak (exit code and gates as the command's), stops the server with
SIGTERM (the supervisor drains it), and writes ``--out/soak-<name>.json`` (date, machine, git
commit, the exact commands, the load test's summary, the supervisor's last status, the machine's
load average during the run) plus ``soak-<name>-resources.png`` and ``soak-<name>-throughput.png``.
The exit code is 1 when any deployment's gates failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRITONIZE = str(Path(sys.executable).with_name("tritonize"))
READY_TIMEOUT_S = 900.0  # full-size T5 stubs load ONNX Runtime sessions; slow on a busy machine


@dataclass(frozen=True)
class Deployment:
    name: str  # results file name
    demo: str  # tritonize build --demo
    model: str  # deployment in the shipped spec


DEPLOYMENTS = (
    Deployment("classifier-tiny", "tiny", "distilbert_emotion"),
    Deployment("classifier-full", "full", "distilbert_emotion"),
    Deployment("t5-small-full", "full", "t5_small_emotion"),
)


def machine() -> dict:
    """CPU model, cores, SIMD flags, GPUs, Python and kernel (as every measurement records them), plus
    memory and a word on sharing: the soak's resource figures are read against both."""
    import psutil

    from tritonize import provenance

    return {
        **provenance.machine(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "shared": "other engineers' jobs ran on the same cores during the run (see load_average)",
    }


def git_commit() -> dict:
    from tritonize.provenance import git_state

    return git_state()


class LoadAverage:
    """The 1-minute load average every ``interval_s`` (other users' jobs show up here)."""

    def __init__(self, interval_s: float = 30.0) -> None:
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    def _run(self, interval_s: float) -> None:
        while True:
            self.values.append(round(os.getloadavg()[0], 2))
            if self._stop.wait(interval_s):
                return

    def __enter__(self) -> LoadAverage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        ordered = sorted(self.values)
        return {
            "samples": len(ordered),
            "min": ordered[0] if ordered else None,
            "median": ordered[len(ordered) // 2] if ordered else None,
            "max": ordered[-1] if ordered else None,
        }


def build(deployment: Deployment, work: Path) -> Path:
    repository = work / f"{deployment.demo}-{deployment.model}" / "model_repository"
    if not (repository / "build_report.json").exists():
        command = [TRITONIZE, "build", "--demo", deployment.demo, "--model", deployment.model, "--out", str(repository)]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return repository


def wait_ready(http_port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tritonize serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise RuntimeError(f"tritonize serve not ready within {READY_TIMEOUT_S:.0f} s")


def soak(deployment: Deployment, args: argparse.Namespace, commit: dict) -> dict:
    from tritonize.server import free_port

    repository = build(deployment, args.work)
    run_dir = args.work / "runs" / deployment.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    key = secrets.token_hex(16)
    status_file = run_dir / "status.json"
    serve = [
        TRITONIZE, "serve", "--repository", str(repository),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
        "--admin-key", "<random>", "--status-file", str(status_file),
    ]  # fmt: skip
    loadtest = [
        TRITONIZE, "loadtest", "--shape", "soak", "--model", deployment.model, "--protocol", args.protocol,
        "--users", str(args.users), "--ramp", args.ramp, "--hold", args.hold, "--spike", args.spike,
        "--recover", args.recover, "--sample-interval", str(args.sample_interval),
        "--url", f"127.0.0.1:{grpc if args.protocol == 'grpc' else http}", "--metrics-url", f"127.0.0.1:{metrics}",
        "--admin-key", "<random>", "--out", str(run_dir / "loadtest"),
    ]  # fmt: skip
    started = dt.datetime.now(dt.timezone.utc)
    with (run_dir / "serve.log").open("w") as log:
        server = subprocess.Popen([key if a == "<random>" else a for a in serve], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(http, server)
            print(f"{deployment.name}: serving {repository} on :{http}; soak starts", flush=True)
            with LoadAverage() as load:
                code = subprocess.run([key if a == "<random>" else a for a in loadtest], check=False).returncode
            status = json.loads(status_file.read_text()) if status_file.exists() else None
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    plots = {}
    for kind, produced in (("resources", "resources_plot"), ("throughput", "plot")):
        if summary["files"].get(produced):
            target = args.out / f"soak-{deployment.name}-{kind}.png"
            shutil.copyfile(summary["files"][produced], target)
            plots[kind] = target.name
    summary.pop("files", None)  # paths of the run directory, not part of the result
    return {
        "deployment": deployment.name,
        "model": deployment.model,
        "demo": deployment.demo,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": commit,  # read when the script started: the code that ran
        "commands": {
            "script": " ".join(["scripts/soak.py", *sys.argv[1:]]),
            "serve": " ".join(serve[1:]).replace(str(ROOT) + "/", ""),
            "loadtest": " ".join(loadtest[1:]).replace(str(ROOT) + "/", ""),
        },
        "loadtest_exit_code": code,
        "passed": summary.get("passed", False) and code == 0,
        "load_average_1m": load.summary(),
        "supervisor": _supervisor(status),
        "summary": summary,
        "plots": plots,
    }


def _supervisor(status: dict | None) -> dict | None:
    """What the watchdog did during the run (restarts, reloads, its events)."""
    if status is None:
        return None
    server = status.get("server", {})
    return {
        "state": status.get("state"),
        "restarts": server.get("restarts"),
        "reloads": server.get("reloads"),
        "events": status.get("events", []),
    }


def _mem(growth: dict) -> str:
    return f"{growth['reference_mb']:.1f} -> {growth['end_mb']:.1f} ({growth['growth_ratio']:+.1%})"


def _counts(server: dict, stubs: dict) -> str:
    return f"{server['reference']:g}/{stubs['reference']:g} -> {server['end']:g}/{stubs['end']:g}"


def report(results: Path) -> str:
    """A Markdown table of every ``soak-*.json`` in ``results`` (what docs/soak.md quotes)."""
    rows = [
        "| deployment | hold | requests | failed | req/s | p99 ms | tritonserver RSS MB (ref -> end) | stubs RSS MB | "
        "server /dev/shm MB | fds server/stubs (ref -> end) | threads server/stubs | restarts | load avg (median) | gates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(results.glob("soak-*.json")):
        d = json.loads(path.read_text())
        s, r = d["summary"], d["summary"]["resources"]
        hold = next(p for p in s["shape"]["phases"] if p["name"] == "hold")
        grown = {k: r[k]["after_warmup"] for k in ("server_rss", "stubs_rss", "server_shm", "server_fds", "stubs_fds",
                                                   "server_threads", "stubs_threads")}  # fmt: skip

        c = s["client"]
        rows.append(
            f"| {d['deployment']} | {(hold['end_s'] - hold['start_s']) / 60:g} min at {hold['users']} users | {c['requests']} "
            f"| {c['failures']} | {c['requests_per_s']:.1f} | {c['p99_ms']:.0f} | {_mem(grown['server_rss'])} "
            f"| {_mem(grown['stubs_rss'])} | {_mem(grown['server_shm'])} | {_counts(grown['server_fds'], grown['stubs_fds'])} "
            f"| {_counts(grown['server_threads'], grown['stubs_threads'])} "
            f"| {d['supervisor']['restarts'] if d['supervisor'] else '-'} | {d['load_average_1m']['median']} "
            f"| {'pass' if d['passed'] else 'FAIL'} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=[d.name for d in DEPLOYMENTS], help="repeatable; default: all")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--ramp", default="20s")
    parser.add_argument("--hold", default="30m")
    parser.add_argument("--spike", default="1m")
    parser.add_argument("--recover", default="3m")
    parser.add_argument("--sample-interval", type=float, default=5.0)
    parser.add_argument("--work", type=Path, default=ROOT / "artifacts" / "soak", help="repositories and raw run output")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="JSON results and plots")
    parser.add_argument("--report", action="store_true", help="print a Markdown table of the results in --out; run nothing")
    args = parser.parse_args()
    if args.report:
        print(report(args.out))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    commit = git_commit()
    for deployment in DEPLOYMENTS:
        if args.only and deployment.name not in args.only:
            continue
        try:
            result = soak(deployment, args, commit)
        except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as exc:
            print(f"{deployment.name}: soak did not run: {exc}", file=sys.stderr, flush=True)
            failed.append(deployment.name)
            continue
        path = args.out / f"soak-{deployment.name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        verdict = "passed" if result["passed"] else "FAILED"
        print(f"{deployment.name}: {verdict}; wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
        if not result["passed"]:
            failed.append(deployment.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
