"""Supervision on throwaway real servers: faults under steady load, the health command, SIGTERM drain.

Each test starts its own supervised server on a copy of the classification deployment
(``classifier_repository``), loopback only, and breaks it on purpose: the session server is
never touched. Figures (requests sent and how each ended, recovery times, memory) are printed
as ``FAULT ...`` lines and recorded with ``record_property``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _faults import MODEL, SteadyLoad, healthy_answers
from conftest import instance_count, loopback_config

from tritonize.corpus import builtin_emotion
from tritonize.serving import processes
from tritonize.serving.probe import Prober
from tritonize.serving.watchdog import WatchdogConfig

pytestmark = pytest.mark.triton

RECOVERY_LIMIT_S = 60.0  # a bound so nothing waits forever, not a performance goal
WARM_ANSWERS = 20  # correct answers before a fault: each of the 4 senders is past its first request
TEXTS = [e.text for e in builtin_emotion()][:24]


def _instances(repository: Path, step: str) -> int:
    from tritonize.repository.triton_config import parse_pbtxt

    return instance_count(parse_pbtxt((repository / step / "config.pbtxt").read_text()))


def _supervisor(repository: Path, cache: Path, interval_s: float, status_file: Path | None = None):
    from tritonize.serving.supervisor import Supervisor

    config = loopback_config(repository)
    watchdog = WatchdogConfig(interval_s=interval_s, probe_timeout_s=5.0)
    return Supervisor(config, watchdog, cache_dir=cache, status_file=status_file)


def _urls(supervisor) -> dict[str, str]:
    return {"http": supervisor.server.http_url, "grpc": supervisor.server.grpc_url}


def _events(supervisor) -> list:
    return list(supervisor.events)  # one C-level copy: the watchdog thread may append meanwhile


def _kinds(supervisor) -> list[str]:
    return [e.kind.value for e in _events(supervisor)]


def _assert_clean_after(supervisor, server_pids: list[int]) -> None:
    """No stub of any of the servers is left, and none of their shm regions."""
    for pid in server_pids:
        assert processes.server_stubs(pid) == [], f"stubs of tritonserver {pid} outlived it"
    assert processes.existing_regions(supervisor._regions) == set()


def _run_fault(
    supervisor, inject, record_property, name: str, rss_limit: float = 1.5
) -> tuple[dict, float | None, dict, dict]:
    """Steady load, ``inject()`` once, wait for correct answers to come back; returns the figures
    (RSS after recovery at most ``rss_limit`` times the RSS before the fault)."""
    expected = healthy_answers(supervisor.server.http_url, TEXTS)
    assert len({label for label, _ in expected.values()}) >= 2, "answers must depend on the text"
    baseline = supervisor.memory()
    load = SteadyLoad(urls=_urls(supervisor), expected=expected).start()
    try:
        load.wait_answered(WARM_ANSWERS, timeout_s=RECOVERY_LIMIT_S)  # every sender is past its first request
        t_fault = time.monotonic()
        inject()
        recovery_s = load.wait_recovered(t_fault, RECOVERY_LIMIT_S)
        load.urls.update(_urls(supervisor))
    finally:
        load.stop()
    after = supervisor.memory()
    counts = load.counts()
    watched = [e.to_dict() for e in _events(supervisor) if e.kind.value in ("reloaded", "restarted", "recovered")]
    extra = {
        "errors_after_fault": len(load.errors_after(t_fault)),
        "rss_ratio": f"{after['rss_bytes'] / baseline['rss_bytes']:.2f}",
        "shm_regions": f"{baseline['shm_regions']}->{after['shm_regions']}",
        "watchdog": json.dumps([(e["kind"], e["model"], e["duration_s"]) for e in watched]),
    }
    line = load.summary(name, recovery_s, extra)
    print(line)
    record_property(name, line)
    assert counts["hung"] == 0 and counts["wrong"] == 0, line
    assert counts["sent"] == counts["answered"] + counts["explicit_error"], line
    assert recovery_s is not None, f"no correct answers within {RECOVERY_LIMIT_S} s: {line}"
    assert after["rss_bytes"] <= rss_limit * baseline["rss_bytes"], line
    return counts, recovery_s, baseline, after


def test_watchdog_reloads_the_model_when_its_stub_is_killed_under_load(classifier_repository, tritonize_cache, record_property):
    supervisor = _supervisor(classifier_repository, tritonize_cache, interval_s=1.0).start()
    server_pid = supervisor.server.pid
    # A reload starts a new version with all its instances, and 2.51 keeps the old version's
    # surviving stubs (and every region) until the server exits: with N instances the stubs'
    # memory grows by up to N-1 stubs per reload, which the RSS bound allows.
    instances = _instances(classifier_repository, f"{MODEL}_model")
    try:
        stub = processes.stub_of(server_pid, f"{MODEL}_model")
        counts, _, baseline, after = _run_fault(
            supervisor, lambda: os.kill(stub.pid, signal.SIGKILL), record_property, "stub-sigkill",
            rss_limit=1.5 + 0.5 * (instances - 1),
        )
        assert counts["explicit_error"] >= 1, "the fault was not felt: the test proves nothing"
        assert any(e.kind == "reloaded" and e.model == f"{MODEL}_model" for e in _events(supervisor))
        assert supervisor.server.pid == server_pid and supervisor.restarts == 0  # reloaded, not restarted
        # Triton 2.51 keeps the dead stub's model version (and its instances' regions) until the server exits.
        assert after["shm_regions"] <= baseline["shm_regions"] + supervisor.reloads * instances
    finally:
        supervisor.shutdown()
    _assert_clean_after(supervisor, [server_pid])


def test_watchdog_recovers_when_a_stub_is_stopped_and_resumed_under_load(
    single_instance_repository, tritonize_cache, record_property
):
    classifier_repository = single_instance_repository
    supervisor = _supervisor(classifier_repository, tritonize_cache, interval_s=1.0).start()
    pids = [supervisor.server.pid]
    # The first Python step of the ensemble: the tokenizer, or the embedded target's fused step.
    paused = f"{MODEL}_tokenizer" if (classifier_repository / f"{MODEL}_tokenizer").is_dir() else f"{MODEL}_model"
    stub = processes.stub_of(pids[0], paused)

    def pause() -> None:
        os.kill(stub.pid, signal.SIGSTOP)
        time.sleep(3.0)
        os.kill(stub.pid, signal.SIGCONT)

    try:
        counts, _, _, _ = _run_fault(supervisor, pause, record_property, "stub-sigstop-3s")
        assert counts["explicit_error"] >= 1, "Triton declares a stub stopped for > 1 s unhealthy"
        reload = next(e for e in _events(supervisor) if e.kind == "reloaded")
        assert reload.model == paused and f"pid {stub.pid}, state stopped" in reload.detail  # psutil.STATUS_STOPPED
        # the stopped stub was killed before the reload, so SIGCONT could not abort the server
        assert "restarted" not in _kinds(supervisor) and supervisor.server.pid == pids[0]
        assert Prober(supervisor.server.http_url).probe(MODEL).ok
    finally:
        supervisor.shutdown()
    _assert_clean_after(supervisor, pids)


def test_supervisor_restarts_a_killed_server_and_removes_its_debris_under_load(
    classifier_repository, tritonize_cache, record_property
):
    supervisor = _supervisor(classifier_repository, tritonize_cache, interval_s=1.0).start()
    old_pid = supervisor.server.pid
    old_regions = {s.shm_region for s in processes.server_stubs(old_pid)}
    try:
        counts, _, baseline, after = _run_fault(
            supervisor, lambda: os.kill(old_pid, signal.SIGKILL), record_property, "server-sigkill"
        )
        assert counts["explicit_error"] >= 1
        assert supervisor.restarts == 1 and supervisor.server.pid != old_pid
        assert processes.server_stubs(old_pid) == [], "stubs of the killed server are still running"
        assert processes.existing_regions(old_regions) == set(), "the killed server's shm regions were left"
        assert after["shm_regions"] == baseline["shm_regions"]
        new_pid = supervisor.server.pid
    finally:
        supervisor.shutdown()
    _assert_clean_after(supervisor, [old_pid, new_pid])


def test_health_reports_a_dead_stub_until_the_watchdog_reloads_it(
    single_instance_repository, tritonize_cache, tmp_path, capsys
):
    from tritonize.cli import main

    status_file = tmp_path / "status.json"
    with _supervisor(single_instance_repository, tritonize_cache, interval_s=0, status_file=status_file) as supervisor:
        argv = ["health", "--url", supervisor.server.http_url, "--status-file", str(status_file)]
        assert main(argv) == 0
        healthy = json.loads(capsys.readouterr().out)
        assert healthy["deployments"][MODEL]["ok"] and healthy["watchdog"]["state"] == "serving"

        os.kill(processes.stub_of(supervisor.server.pid, f"{MODEL}_model").pid, signal.SIGKILL)
        assert main(argv) == 1
        sick = json.loads(capsys.readouterr().out)
        assert sick["ready"], "Triton 2.51 still says ready: the probe is what notices"
        assert sick["deployments"][MODEL]["unhealthy_instance"] == f"{MODEL}_model_0_0"

        events = supervisor.check_now()
        assert [e.kind for e in events][-2:] == ["reloaded", "recovered"], events
        assert main(argv) == 0
        status = json.loads(capsys.readouterr().out)["watchdog"]
        assert status["server"]["reloads"] == 1
        assert [e["kind"] for e in status["events"]][:2] == ["stub_died", "probe_failed"]
        recovered = next(e for e in status["events"] if e["kind"] == "recovered")
        print(f"health: watchdog round detected and reloaded in {recovered['duration_s']} s")


# -- SIGTERM: drain, then stop -----------------------------------------------------------------


def _serve(repository: Path, cache: Path, exit_timeout: int) -> tuple[subprocess.Popen, dict[str, str], list[str]]:
    from tritonize.server import free_port

    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command = [
        sys.executable, "-m", "tritonize.cli", "serve", "--repository", str(repository),
        "--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"]), "--metrics-port", str(ports["metrics"]),
        "--exit-timeout-secs", str(exit_timeout), "--watchdog-interval", "2",
    ]  # fmt: skip
    env = {**os.environ, "TRITONIZE_CACHE": str(cache)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("log:") or proc.poll() is not None:
            break
    assert any(line.startswith("Triton ready") for line in lines), "".join(lines)
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, {p: f"127.0.0.1:{ports[p]}" for p in ("http", "grpc")}, lines


def _tritonserver_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return next(int(c) for c in children if Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")[0].endswith(b"tritonserver"))


def _held_requests(urls: dict[str, str], texts: list[str]) -> tuple[list[threading.Thread], list[dict], threading.Barrier]:
    """One warm client per text (alternating protocols), each sending its text once when released."""
    from tritonize.client import TritonizeClient

    results: list[dict] = [{} for _ in texts]
    warmed, release = threading.Barrier(len(texts) + 1), threading.Barrier(len(texts) + 1)

    def send(i: int) -> None:
        protocol = ("grpc", "http")[i % 2]
        with TritonizeClient(urls[protocol], protocol, timeout=10) as client:
            client.classify(["warm up"], model=MODEL)  # config cached: the held call is one request
            warmed.wait()
            release.wait()
            results[i]["sent"] = time.monotonic()
            try:
                results[i]["answer"] = client.classify([texts[i]], model=MODEL)[0]
            except Exception as exc:  # noqa: BLE001 - reported by the test
                results[i]["error"] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(texts))]
    for t in threads:
        t.start()
    return threads, results, warmed, release


def _wait_line(lines: list[str], text: str, timeout_s: float = 10.0) -> None:
    """Until ``tritonize serve`` printed a line containing ``text``."""
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in list(lines)):
        assert time.monotonic() < deadline, f"serve never printed {text!r}: {''.join(lines)}"
        time.sleep(0.02)


def test_serve_answers_accepted_requests_and_refuses_new_ones_when_sent_sigterm(
    classifier_repository, tritonize_cache, record_property
):
    exit_timeout = 10
    proc, urls, lines = _serve(classifier_repository, tritonize_cache, exit_timeout)
    try:
        server_pid = _tritonserver_child(proc.pid)
        expected = healthy_answers(urls["http"], TEXTS)
        stub = processes.stub_of(server_pid, f"{MODEL}_model")
        regions = {s.shm_region for s in processes.server_stubs(server_pid)}
        held_texts = TEXTS[:4]
        threads, held, warmed, release = _held_requests(urls, held_texts)
        warmed.wait(timeout=60)  # every client warmed up (model config cached: the held call is one request)
        # The model step is paused for well under Triton's 1 s stub health check, so the held
        # requests are accepted and inside the ensemble when SIGTERM arrives.
        os.kill(stub.pid, signal.SIGSTOP)
        try:
            release.wait(timeout=5)
            # No event says a request is inside the server: 2.51 counts queued requests
            # (nv_inference_pending_request_count) but not those an instance is executing.
            time.sleep(0.2)
            t_term = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _wait_line(lines, "stopping: draining deployments")
            late = SteadyLoad(urls=urls, expected=expected, threads=2).start()
        finally:
            os.kill(stub.pid, signal.SIGCONT)
        code = proc.wait(timeout=exit_timeout + 15)
        exit_s = time.monotonic() - t_term
        late.stop()
        for t in threads:
            t.join(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    answered = [r for r, text in zip(held, held_texts) if r.get("answer") and r["answer"]["label"] == expected[text][0]]
    counts = late.counts()
    line = (
        f"FAULT sigterm: in-flight sent={len(held)} answered={len(answered)}; after SIGTERM sent={counts['sent']} "
        f"answered={counts['answered']} refused={counts['explicit_error']} wrong={counts['wrong']} hung={counts['hung']}; "
        f"exit code {code} after {exit_s:.2f} s (exit timeout {exit_timeout} s)"
    )
    print(line)
    record_property("sigterm", line)
    assert code == 0, "".join(lines)
    assert all(r["sent"] < t_term for r in held) and len(answered) == len(held_texts), held
    assert counts["hung"] == 0 and counts["wrong"] == 0 and counts["explicit_error"] >= 1, line
    refusals = [o.error for o in late.outcomes if o.error]
    # "closed" (HTTP) and gRPC's CANCELLED: a late request still on the connection when the stopping
    # server closes it ends with an explicit error, which is what this asserts, never a hang.
    expected_refusals = ("has no available versions", "Server is stopping", "refused", "closed", "CANCELLED")
    assert all(any(r in e for r in expected_refusals) for e in refusals), sorted(set(refusals))[:5]
    assert any("drained" in x and "in-flight requests finished" in x for x in lines), "".join(lines)
    assert processes.server_stubs(server_pid) == [] and processes.existing_regions(regions) == set()
