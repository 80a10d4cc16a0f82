"""Overload protection on the real server: a burst against tiny queues is partly refused, never wrong.

The ``constrained_server`` fixture serves ``distilbert_emotion`` built from a spec whose steps
hold at most 2 queued requests and refuse those waiting over 20 ms. A burst of concurrent
requests must end, for each request, in either the answer the server gives when idle or an
:class:`OverloadedError`, on both protocols and both clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import numpy as np
import pytest

from tritonize.aio_client import AsyncTritonizeClient
from tritonize.client import TritonizeClient
from tritonize.corpus import builtin_emotion
from tritonize.errors import OverloadedError
from tritonize.triton_facts import SCHEDULER_REFUSALS

pytestmark = pytest.mark.triton
MODEL = "distilbert_emotion"
BURST = 24  # concurrent requests
TEXTS_PER_REQUEST = 32  # a full batch each: the model step works on every request for a while
MAX_BURSTS = 3  # a burst that happens to be refused entirely or not at all is repeated


def _requests() -> list[list[str]]:
    texts = [e.text for e in builtin_emotion()]
    return [
        [f"{texts[(i * TEXTS_PER_REQUEST + j) % len(texts)]} " * 8 for j in range(TEXTS_PER_REQUEST)]
        for i in range(BURST)
    ]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture(scope="module")
def reference(constrained_server) -> list[np.ndarray]:
    """What the server answers one request at a time (its queues never overflow then)."""
    with TritonizeClient(constrained_server.grpc_url, "grpc") as client:
        return [client.infer_raw(MODEL, texts, ["PROBABILITIES"])["PROBABILITIES"] for texts in _requests()]


def _sync_burst(url: str, protocol: str) -> list[np.ndarray | BaseException]:
    requests = _requests()
    results: list[np.ndarray | BaseException | None] = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(i: int) -> None:
        with TritonizeClient(url, protocol, timeout=60.0) as client:
            barrier.wait()
            try:
                results[i] = client.infer_raw(MODEL, requests[i], ["PROBABILITIES"])["PROBABILITIES"]
            except Exception as exc:  # noqa: BLE001 - every outcome is checked below
                results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return results


def _aio_burst(url: str, protocol: str) -> list[np.ndarray | BaseException]:
    async def run() -> list[np.ndarray | BaseException]:
        async with AsyncTritonizeClient(url, protocol, timeout=60.0) as client:
            calls = [client.infer_raw(MODEL, texts, ["PROBABILITIES"]) for texts in _requests()]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return [o if isinstance(o, BaseException) else o["PROBABILITIES"] for o in outcomes]

    return asyncio.run(asyncio.wait_for(run(), timeout=120))


def _tally(results, reference) -> Counter:
    """Every request is either answered exactly as when idle, or refused as overloaded."""
    counts: Counter = Counter()
    for got, expected in zip(results, reference):
        if isinstance(got, BaseException):
            assert isinstance(got, OverloadedError), f"not an overload refusal: {got!r}"
            assert "retry later" in str(got)
            kind = [text for text in SCHEDULER_REFUSALS if text in got.cause]
            assert kind, got.cause
            counts[kind[0]] += 1
        else:
            np.testing.assert_allclose(got, expected, atol=1e-5)
            counts["answered"] += 1
    return counts


@pytest.mark.parametrize("client", ["sync", "aio"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_burst_is_answered_correctly_or_refused_as_overloaded_when_queues_are_tiny(
    constrained_server, reference, protocol: str, client: str
) -> None:
    burst = _sync_burst if client == "sync" else _aio_burst
    total: Counter = Counter()
    for _ in range(MAX_BURSTS):
        total += _tally(burst(_url(constrained_server, protocol), protocol), reference)
        if total["answered"] and sum(total.values()) > total["answered"]:
            break
    print(f"overload {protocol}/{client}: {dict(total)}")
    assert total["answered"] >= 1, total
    assert sum(total.values()) - total["answered"] >= 1, f"tiny queues refused nothing: {total}"
    # the server is not harmed: an idle request is answered as before
    with TritonizeClient(constrained_server.grpc_url, "grpc") as sync:
        np.testing.assert_allclose(sync.infer_raw(MODEL, _requests()[0], ["PROBABILITIES"])["PROBABILITIES"], reference[0], atol=1e-5)
