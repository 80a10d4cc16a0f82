"""The endpoint pool: URL lists, round robin, back-off, and what a failure says about a server.

The pool's decisions are tested on the exceptions the real clients raise: a closed port, a
peer that accepts and hangs up, and the exception types of the transports; no server needed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from tritonize.aio_client import AsyncTritonizeClient
from tritonize.client import TritonizeClient
from tritonize.endpoints import (
    EndpointPool,
    Failure,
    classify_failure,
    join_urls,
    refused_before_accepted,
    split_urls,
)
from tritonize.errors import ClientError, InferenceError, RequestTimeoutError, ServerUnavailableError
from tritonize.loadtest.payload import endpoint_list

A, B, C = "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"


class Clock:
    """A hand-driven clock for the back-off."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _refused(url: str) -> ServerUnavailableError:
    """What the sync HTTP client raises for a closed port: a ClientError wrapping ConnectionRefusedError."""
    error = ServerUnavailableError(url, "m", "server not reachable")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


class Servers:
    """Stand-ins for servers inside ``attempt``: each URL answers, refuses, or fails as told."""

    def __init__(self, behaviour: dict[str, BaseException | None]) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []

    def __call__(self, url: str) -> str:
        self.calls.append(url)
        error = self.behaviour.get(url)
        if error is not None:
            raise error
        return f"answer from {url}"


def test_split_urls_accepts_strings_and_lists_when_well_formed() -> None:
    assert split_urls(f"{A}, {B}") == (A, B)
    assert split_urls([A, B]) == (A, B)
    assert join_urls([A, B]) == f"{A},{B}" and join_urls(None) is None
    assert split_urls("[::1]:8001") == ("[::1]:8001",)


@pytest.mark.parametrize(
    ("urls", "problem"),
    [("", "no server URL"), (f"{A},{A}", "listed twice"), ("http://h:1", "host:port"), ("h", "host:port"),
     (f"{A},", "host:port"), ("h:0", "host:port"), ("h:99999", "host:port")],
)  # fmt: skip
def test_split_urls_names_the_problem_when_malformed(urls: str, problem: str) -> None:
    with pytest.raises(ClientError, match=problem):
        split_urls(urls)


def test_pool_goes_round_robin_when_every_server_answers() -> None:
    pool = EndpointPool([A, B, C])
    servers = Servers({})
    for _ in range(6):
        pool.call(servers)
    assert servers.calls == [A, B, C, A, B, C]
    assert {url: counts.answered for url, counts in pool.counts().items()} == {A: 2, B: 2, C: 2}


def test_pool_sends_to_next_server_and_skips_refusing_one_when_connection_refused() -> None:
    clock = Clock()
    pool = EndpointPool([A, B], backoff_s=1.0, clock=clock)
    servers = Servers({A: _refused(A)})
    assert pool.call(servers) == f"answer from {B}"  # A refused: the same request went to B
    assert servers.calls == [A, B] and pool.down() == (A,)
    servers.calls.clear()
    for _ in range(4):
        pool.call(servers)
    assert servers.calls == [B] * 4  # A sits out its back-off
    clock.now += 1.01
    servers.behaviour = {}
    pool.call(servers)
    pool.call(servers)
    assert set(servers.calls[-2:]) == {A, B} and pool.down() == ()  # back in the rotation, and it answered
    counts = pool.counts()[A]
    assert (counts.refused, counts.marked_down, counts.failed) == (1, 1, 0)


def test_pool_doubles_back_off_when_server_keeps_refusing() -> None:
    clock = Clock()
    pool = EndpointPool([A, B], backoff_s=1.0, max_backoff_s=3.0, clock=clock)
    servers = Servers({A: _refused(A)})
    tried_at = []
    for _ in range(60):  # one request every 0.25 s for 15 s
        servers.calls.clear()
        assert pool.call(servers) == f"answer from {B}"  # no request lost to A's refusals
        if A in servers.calls:
            tried_at.append(clock.now)
        clock.now += 0.25
    gaps = [b - a for a, b in zip(tried_at, tried_at[1:])][:4]
    # back-offs 1 s, 2 s, then capped at 3 s; A's turn may come one request (0.25 s) after it is back
    assert [expected <= gap <= expected + 0.25 for gap, expected in zip(gaps, (1.0, 2.0, 3.0, 3.0))] == [True] * 4


def test_pool_raises_without_resending_when_request_may_have_reached_server() -> None:
    lost = InferenceError(A, "m", "connection closed.")
    lost.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    answered = InferenceError(A, "m", "TEXT item 0 is empty")
    timed_out = RequestTimeoutError(A, "m", "request timed out")
    for error, down in ((lost, (A,)), (answered, ()), (timed_out, ())):
        pool = EndpointPool([A, B])
        servers = Servers({A: error})
        with pytest.raises(ClientError) as info:
            pool.call(servers)
        assert info.value is error and servers.calls == [A]  # never sent to B
        assert pool.down() == down and pool.counts()[A].failed == 1


def test_pool_tries_down_servers_last_and_names_all_when_every_server_refuses() -> None:
    pool = EndpointPool([A, B])
    servers = Servers({A: _refused(A), B: _refused(B)})
    with pytest.raises(ServerUnavailableError, match="no server accepted") as info:
        pool.call(servers)
    assert A in str(info.value) and B in str(info.value) and refused_before_accepted(info.value)
    servers.calls.clear()
    servers.behaviour = {A: _refused(A)}  # B is back
    assert pool.call(servers) == f"answer from {B}"  # both down: both still tried, soonest back first
    assert servers.calls == [A, B]


def test_pool_is_consistent_when_shared_by_threads() -> None:
    pool = EndpointPool([A, B])
    servers = Servers({})

    def user() -> None:
        for _ in range(200):
            pool.call(servers)

    threads = [threading.Thread(target=user) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {url: c.answered for url, c in pool.counts().items()} == {A: 400, B: 400}


def test_pool_acall_sends_to_next_server_when_connection_refused() -> None:
    pool = EndpointPool([A, B])

    async def attempt(url: str) -> str:
        if url == A:
            raise _refused(A)
        return url

    assert asyncio.run(pool.acall(attempt)) == B and pool.down() == (A,)


# -- the real transports' exceptions -------------------------------------------------------------
@pytest.fixture
def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def hang_up_url() -> Iterator[str]:
    """A peer that accepts a connection, reads the request and closes without answering."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    sock.close()


def _sync_failure(url: str, protocol: str) -> ClientError:
    with TritonizeClient(url, protocol, timeout=5.0) as client, pytest.raises(ClientError) as info:
        client.infer_raw("m", ["x"], ["LABEL"])
    return info.value


def _aio_failure(url: str, protocol: str) -> ClientError:
    async def run() -> None:
        async with AsyncTritonizeClient(url, protocol, timeout=5.0, retries=0) as client:
            await client.infer_raw("m", ["x"], ["LABEL"])

    with pytest.raises(ClientError) as info:
        asyncio.run(run())
    return info.value


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("failure", [_sync_failure, _aio_failure], ids=["sync", "aio"])
def test_classify_failure_says_refused_when_nothing_listens(closed_url: str, protocol: str, failure) -> None:
    error = failure(closed_url, protocol)
    assert classify_failure(error) is Failure.REFUSED and refused_before_accepted(error)
    assert error.url == closed_url


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("failure", [_sync_failure, _aio_failure], ids=["sync", "aio"])
def test_classify_failure_never_says_answered_when_peer_hangs_up(hang_up_url: str, protocol: str, failure) -> None:
    error = failure(hang_up_url, protocol)
    # HTTP sent its request before the peer hung up: it may have been read, so it is lost, never resent.
    # gRPC never got past the HTTP/2 handshake ("failed to connect to all addresses"): nothing was sent.
    assert classify_failure(error) is (Failure.REFUSED if protocol == "grpc" else Failure.LOST)


def test_client_answers_from_second_server_when_first_refuses(closed_url: str, hang_up_url: str) -> None:
    """Through the real sync client: the refusing URL is skipped, the hanging-up one is not resent."""
    with TritonizeClient([closed_url, hang_up_url], "http", timeout=5.0) as client:
        with pytest.raises(ClientError) as info:
            client.infer_raw("m", ["x"], ["LABEL"])
        assert info.value.url == hang_up_url  # the refused one was skipped; the failure names the one reached
        counts = client.endpoints.counts()
    assert (counts[closed_url].refused, counts[hang_up_url].failed) == (1, 1)


def test_endpoint_list_reads_locust_hosts_when_several_are_given() -> None:
    assert endpoint_list("http://h1:8000,http://h2:8000", "grpc") == ("h1:8001", "h2:8001")
    assert endpoint_list("grpc://h1:8001,h2:8001", "grpc") == ("h1:8001", "h2:8001")  # scheme carries over
    assert endpoint_list("http://h1:8000", "grpc", urls="h1:9001,h2:9001") == ("h1:9001", "h2:9001")
    assert endpoint_list("http://h1:8000", "http", urls="http://h3:8000") == ("h3:8000",)
    assert endpoint_list("http://h1:8000", "grpc", grpc_url="g1:1,g2:2") == ("g1:1", "g2:2")
    with pytest.raises(ClientError, match="listed twice"):
        endpoint_list("http://h1:8000,h1:8000", "http")


def test_pool_keeps_server_out_when_call_sent_before_its_failure_answers_late() -> None:
    clock = Clock()
    pool = EndpointPool([A, B], backoff_s=1.0, clock=clock)
    early = clock.now  # a call to A, still in flight when a later one fails
    clock.now += 0.1
    pool.record(A, Failure.LOST, clock.now)
    clock.now += 0.1
    pool.record(A, None, early)  # the early call's answer: A stays out of the rotation
    assert pool.down() == (A,) and pool.counts()[A].answered == 1
    clock.now += 1.0
    pool.record(A, None, clock.now)  # a call sent after A was taken out: A is back
    assert pool.down() == ()
