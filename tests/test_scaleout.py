"""Scale-out against real servers: two embedded Tritons behind one client, and distributed Locust.

Two embedded servers on loopback serve a copy of the tiny demo's ``distilbert_emotion``. The
clients spread load over both (each server's statistics show its share), then one server is
stopped mid-run: every request must end with the answer a healthy server gives for the same
text, or with an explicit error naming the stopped server while it stopped; none may hang.
The accounting is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import loopback_config

from tritonize.aio_client import AsyncTritonizeClient
from tritonize.client import TritonizeClient, classify, generate, parse_classification
from tritonize.endpoints import EndpointCounts, EndpointPool
from tritonize.errors import ClientError
from tritonize.loadtest.metrics import parse_statistics
from tritonize.loadtest.payload import corpus_texts

MODEL = "distilbert_emotion"
LANES = 6  # requests in flight at once
SPREAD_REQUESTS = 60  # both servers up
BEFORE_STOP = 60  # answered before server A is asked to stop
AFTER_STOP = 60  # started after A stopped, and finished, before the run ends
AFTER_STOP_S = 4.0  # and the run goes on this long after A stopped: A's back-off ends, it refuses, B answers
BACKOFF_S, MAX_BACKOFF_S = 0.5, 2.0  # the pool's back-off in these tests (shorter than the default)
MAX_REQUESTS = 100_000  # a bound only: the run ends by time (the stop, then AFTER_STOP_S)
REQUEST_TIMEOUT_S = 30.0
RUN_LIMIT_S = 180.0  # a request not finished by then counts as hung

pytestmark = pytest.mark.triton


# -- two servers ----------------------------------------------------------------------------------
@dataclass
class TwoServers:
    a: object  # EmbeddedServer
    b: object

    def url(self, server, protocol: str) -> str:
        return server.grpc_url if protocol == "grpc" else server.http_url

    def ensure_running(self) -> None:
        for server in (self.a, self.b):
            if not server.is_running():
                server.start()


@pytest.fixture(scope="module")
def two_servers(demo_repository: Path, tritonize_cache: Path, tmp_path_factory) -> Iterator[TwoServers]:
    from tritonize.server import EmbeddedServer

    repository = tmp_path_factory.mktemp("two-servers") / "model_repository"
    for step in demo_repository.glob(f"{MODEL}*"):  # the ensemble and its steps
        shutil.copytree(step, repository / step.name)
    servers = []
    try:
        for _ in range(2):
            servers.append(EmbeddedServer(loopback_config(repository), cache_dir=tritonize_cache).start())
        yield TwoServers(*servers)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def reference(two_servers: TwoServers) -> dict[str, dict]:
    """A healthy server's answer for every text, one request per text (as the load sends them)."""
    answers = {}
    with TritonizeClient(two_servers.b.grpc_url, "grpc") as client:
        for text in corpus_texts():
            out = client.infer_raw(MODEL, [text], ["LABEL", "SCORE"])
            answers[text] = parse_classification(out["LABEL"], out["SCORE"])[0]
    return answers


def served(server) -> int:
    """Inference requests ``MODEL`` answered so far, from the server's statistics extension.

    Sends the admin header: the statistics API may be restricted to it.
    """
    from tritonize.server import ADMIN_HEADER

    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{MODEL}/stats", headers={ADMIN_HEADER: server.config.admin_key}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback server
        return parse_statistics(json.load(response))[MODEL].success_count


def served_since(server, before: int, expected: int) -> int:
    """The server's count since ``before``, read again for up to 5 s until it reaches ``expected``.

    The client has every answer once the run ends; Triton books the request as it completes.
    """
    deadline = time.monotonic() + 5.0
    count = served(server) - before
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        count = served(server) - before
    return count


def answered(pool: EndpointPool, since: dict[str, EndpointCounts]) -> dict[str, int]:
    return {url: counts.answered - since[url].answered for url, counts in pool.counts().items()}


# -- one run: lanes of requests, each request booked -----------------------------------------------
@dataclass
class Outcome:
    text: str
    started: float
    ended: float | None = None
    answer: dict | None = None
    error: ClientError | None = None


@dataclass
class Run:
    """Hands out requests (texts in corpus order) until ``limit`` or until told to finish."""

    texts: list[str]
    limit: int
    outcomes: list[Outcome] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> Outcome | None:
        with self.lock:
            if self.finished.is_set() or len(self.outcomes) >= self.limit:
                return None
            outcome = Outcome(text=self.texts[len(self.outcomes) % len(self.texts)], started=time.monotonic())
            self.outcomes.append(outcome)
            return outcome

    def count(self, accept: Callable[[Outcome], bool]) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if accept(o))


def _book(outcome: Outcome, out: dict | None, error: ClientError | None) -> None:
    if out is not None:
        outcome.answer = parse_classification(out["LABEL"], out["SCORE"])[0]
    outcome.error = error
    outcome.ended = time.monotonic()


def drive_sync(run: Run, pool: EndpointPool, protocol: str) -> None:
    """``LANES`` threads, each with its own sync client, all sharing ``pool`` (like Locust users)."""
    clients = [TritonizeClient(str(pool), protocol, timeout=REQUEST_TIMEOUT_S, endpoints=pool) for _ in range(LANES)]

    def lane(client: TritonizeClient) -> None:
        while (outcome := run.next()) is not None:
            try:
                _book(outcome, client.infer_raw(MODEL, [outcome.text], ["LABEL", "SCORE"]), None)
            except ClientError as exc:
                _book(outcome, None, exc)

    threads = [threading.Thread(target=lane, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + RUN_LIMIT_S
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.1))
    run.finished.set()
    for client in clients:
        client.close()


def drive_aio(run: Run, pool: EndpointPool, protocol: str) -> None:
    """One asyncio client with ``LANES`` concurrent request loops."""

    async def main() -> None:
        async with AsyncTritonizeClient(str(pool), protocol, timeout=REQUEST_TIMEOUT_S, endpoints=pool) as client:

            async def lane() -> None:
                while (outcome := run.next()) is not None:
                    try:
                        _book(outcome, await client.infer_raw(MODEL, [outcome.text], ["LABEL", "SCORE"]), None)
                    except ClientError as exc:
                        _book(outcome, None, exc)

            try:
                await asyncio.wait_for(asyncio.gather(*(lane() for _ in range(LANES))), RUN_LIMIT_S)
            except asyncio.TimeoutError:
                run.finished.set()  # what is still open is hung

    asyncio.run(main())


@dataclass
class StopRecord:
    requested: float = float("inf")
    done: float = float("inf")
    counts_when_done: dict[str, EndpointCounts] = field(default_factory=dict)


def stop_mid_run(run: Run, server, pool: EndpointPool, record: StopRecord) -> None:
    """After ``BEFORE_STOP`` answers, stop ``server``; finish the run ``AFTER_STOP`` requests and ``AFTER_STOP_S`` later."""
    deadline = time.monotonic() + RUN_LIMIT_S
    while run.count(lambda o: o.answer is not None) < BEFORE_STOP and time.monotonic() < deadline:
        time.sleep(0.02)
    record.requested = time.monotonic()
    server.stop()
    record.done = time.monotonic()
    record.counts_when_done = pool.counts()
    while (
        run.count(lambda o: o.ended is not None and o.started >= record.done) < AFTER_STOP
        or time.monotonic() < record.done + AFTER_STOP_S
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    run.finished.set()


def _check_answers(run: Run, reference: dict[str, dict]) -> None:
    for outcome in run.outcomes:
        if outcome.answer is not None:
            expected = reference[outcome.text]
            assert outcome.answer["label"] == expected["label"], outcome.text
            assert abs(outcome.answer["score"] - expected["score"]) < 1e-4, outcome.text


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("drive", [drive_sync, drive_aio], ids=["sync", "aio"])
def test_clients_spread_load_and_lose_nothing_when_one_server_stops_mid_run(
    two_servers: TwoServers, reference: dict[str, dict], protocol: str, drive
) -> None:
    two_servers.ensure_running()
    a, b = two_servers.a, two_servers.b
    url_a, url_b = two_servers.url(a, protocol), two_servers.url(b, protocol)
    pool = EndpointPool([url_a, url_b], backoff_s=BACKOFF_S, max_backoff_s=MAX_BACKOFF_S)
    texts = list(reference)
    label = f"[{drive.__name__.removeprefix('drive_')} {protocol}]"

    # 1. Both up: round robin, and each server's statistics count exactly its share.
    counts, served_a, served_b = pool.counts(), served(a), served(b)
    spread = Run(texts=texts, limit=SPREAD_REQUESTS)
    drive(spread, pool, protocol)
    _check_answers(spread, reference)
    share = answered(pool, counts)
    stats = {url_a: served_since(a, served_a, share[url_a]), url_b: served_since(b, served_b, share[url_b])}
    print(f"\n{label} spread: sent {len(spread.outcomes)}, answered A {share[url_a]} / B {share[url_b]}, "
          f"server statistics A {stats[url_a]} / B {stats[url_b]}")  # fmt: skip
    assert spread.count(lambda o: o.answer is not None) == SPREAD_REQUESTS
    assert share == stats and abs(share[url_a] - share[url_b]) <= 1  # round robin over a shared pool

    # 2. A is stopped mid-run: B answers the rest; nothing is lost or hangs.
    counts, served_b = pool.counts(), served(b)
    run, stop = Run(texts=texts, limit=MAX_REQUESTS), StopRecord()
    controller = threading.Thread(target=stop_mid_run, args=(run, a, pool, stop), daemon=True)
    controller.start()
    try:
        drive(run, pool, protocol)
        controller.join(timeout=60)
    finally:
        run.finished.set()
    sent = len(run.outcomes)
    answers = run.count(lambda o: o.answer is not None)
    failures = [o for o in run.outcomes if o.error is not None]
    hung = run.count(lambda o: o.ended is None)
    share = answered(pool, counts)
    stats_b = served_since(b, served_b, share[url_b])
    refused = pool.counts()[url_a].refused - counts[url_a].refused
    after_stop = answered(pool, stop.counts_when_done)
    stopping_s = stop.done - stop.requested
    print(f"{label} failover: sent {sent}, answered {answers} (A {share[url_a]} / B {share[url_b]}; "
          f"B statistics {stats_b}), failed {len(failures)}, hung {hung}; A refused {refused} connections "
          f"(resent to B); A took {stopping_s:.1f} s to stop; after: answered A {after_stop[url_a]} / B "
          f"{after_stop[url_b]}")  # fmt: skip
    for outcome in failures:
        print(f"{label}   failed {outcome.ended - stop.requested:+.2f} s after the stop: {outcome.error}")
    assert hung == 0 and not controller.is_alive()
    assert sent == answers + len(failures)
    assert share[url_a] + share[url_b] == answers and stats_b == share[url_b]
    _check_answers(run, reference)
    assert share[url_a] >= BEFORE_STOP // 3 and after_stop[url_b] >= AFTER_STOP  # both served; B took over
    assert after_stop[url_a] == 0 and refused >= 1  # A refused connections after it stopped: resent to B
    for outcome in failures:  # an explicit error, from the stopped server, while it stopped
        assert isinstance(outcome.error, ClientError) and outcome.error.url == url_a
        assert outcome.ended >= stop.requested
    assert run.count(lambda o: o.started >= stop.done and o.answer is None) == 0  # after the stop: all answered
    # The pool takes A out at its first failure, and answers to requests sent before do not bring it back: a
    # burst of at most the requests in flight when it goes and when it closes, and while it stops (HTTP serves on
    # until its exit timeout) one probe per back-off. Without the pool: about half the requests of the stop.
    assert len(failures) <= 2 * LANES + math.ceil(stopping_s / BACKOFF_S), f"{len(failures)} in {stopping_s:.1f} s"


# -- the convenience functions ----------------------------------------------------------------------
@pytest.fixture
def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_classify_and_generate_answer_when_first_url_refuses(triton_server, closed_url: str, protocol: str) -> None:
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    texts = ["i am so happy today", "this is terrible and i hate it"]
    expected = classify(texts, url=url, protocol=protocol)
    assert classify(texts, url=[closed_url, url], protocol=protocol) == expected
    assert classify(texts, url=f"{closed_url},{url}", protocol=protocol, top_k=2)[0][0]["label"] == expected[0]["label"]
    model = "t5_small_emotion"
    if (triton_server.repository / model).is_dir():
        single = generate(texts, model, url=url, protocol=protocol, max_new_tokens=2)
        assert generate(texts, model, url=[closed_url, url], protocol=protocol, max_new_tokens=2) == single


# -- distributed Locust -------------------------------------------------------------------------------
@pytest.mark.slow
def test_loadtest_merges_worker_counts_matching_server_statistics_when_run_with_two_workers(
    triton_server, tmp_path: Path
) -> None:
    from tritonize.loadtest.runner import LoadtestConfig, run_loadtest

    config = LoadtestConfig(
        out=tmp_path / "distributed",
        protocol="grpc",
        users=4,
        workers=2,
        spawn_rate=4,
        run_time="6s",
        url=triton_server.grpc_url,
        metrics_url=triton_server.metrics_url,
        admin_key=triton_server.admin_key,  # the statistics endpoint is behind the admin key
        progress=False,
    )
    summary = run_loadtest(config)
    log = (config.out / "locust.log").read_text()
    workers = [(config.out / f"locust-worker-{i}.log").read_text() for i in range(2)]
    print(f"\n[distributed grpc, 2 workers] locust requests {summary.client.requests}, failures "
          f"{summary.client.failures}, {summary.client.requests_per_s:.1f} req/s, p50 {summary.client.p50_ms:.0f} ms; "
          f"server requests {summary.server_requests}")  # fmt: skip
    assert "2 workers connected" in log and "to 2 ready workers" in log  # Locust's master log
    assert all("Got quit message from master" in text for text in workers)  # each worker ran under it, then quit
    assert summary.client.requests > 0 and summary.client.failures == 0
    assert summary.client.requests == summary.server_requests  # merged by the master; stop-timeout lets all finish


@pytest.mark.slow
def test_locust_workers_spread_over_servers_matching_their_statistics_when_given_two_urls(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    from tritonize.loadtest.runner import CSV_PREFIX, LoadtestConfig, run_locust
    from tritonize.loadtest.summary import read_locust_stats

    two_servers.ensure_running()
    a, b = two_servers.a, two_servers.b
    before = served(a), served(b)
    config = LoadtestConfig(
        out=tmp_path / "two-urls",
        protocol="http",
        users=4,
        workers=2,
        spawn_rate=4,
        run_time="6s",
        url=f"{a.http_url},{b.http_url}",
        progress=False,
    )
    run_locust(config)
    client = read_locust_stats(config.out / CSV_PREFIX)
    deadline = time.monotonic() + 5.0  # Triton books a request as it completes
    while (share := (served(a) - before[0], served(b) - before[1])) and sum(share) != client.requests:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(f"\n[distributed http, 2 workers, 2 servers] locust requests {client.requests}, failures {client.failures}; "
          f"server statistics A {share[0]} / B {share[1]}")  # fmt: skip
    assert client.requests > 0 and client.failures == 0
    assert sum(share) == client.requests and min(share) >= client.requests // 4  # both took a share
