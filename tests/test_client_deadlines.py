"""Client deadlines: against a server that accepts connections but never answers, every call ends.

A SIGSTOPped tritonserver is the worst case for a client: TCP connects (the kernel accepts into
the backlog) and then nothing comes back. Every call of the sync and asyncio clients, over
both protocols, must end with an explicit error (or ``False`` for readiness) by its deadline.
The Locust users and the CLI go through the same sync client with their ``--timeout``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import loopback_config

from tritonize.aio_client import AsyncTritonizeClient
from tritonize.client import TritonizeClient
from tritonize.errors import ClientError

pytestmark = pytest.mark.triton
TIMEOUT_S = 2.0
HANG_MARGIN_S = 10.0  # generous: the machine is shared; a hang would be unbounded
MODEL = "distilbert_emotion"


def _sync_call(url: str, protocol: str, call: str) -> tuple[str, float]:
    start = time.monotonic()
    client = TritonizeClient(url, protocol, timeout=TIMEOUT_S)
    try:
        if call == "is_ready":
            outcome = f"returned {client.is_ready(MODEL)}"
        else:
            getattr(client, call)(*(["i am happy"] if call == "classify" else [MODEL]), **({"model": MODEL} if call == "classify" else {}))
            outcome = "answered"
    except ClientError as exc:
        outcome = type(exc).__name__
    finally:
        client.close()
    return outcome, time.monotonic() - start


def _async_call(url: str, protocol: str, call: str) -> tuple[str, float]:
    async def run() -> str:
        async with AsyncTritonizeClient(url, protocol, timeout=TIMEOUT_S, retries=0) as client:
            if call == "is_ready":
                return f"returned {await client.is_ready(MODEL)}"
            if call == "classify":
                await client.classify(["i am happy"], model=MODEL)
            else:
                await getattr(client, call)(MODEL)
            return "answered"

    start = time.monotonic()
    try:
        outcome = asyncio.run(run())
    except ClientError as exc:
        outcome = type(exc).__name__
    return outcome, time.monotonic() - start


def test_every_client_call_ends_by_its_deadline_when_the_server_stops_answering(classifier_repository, tritonize_cache):
    from tritonize.server import EmbeddedServer

    config = loopback_config(classifier_repository)
    cases = [
        (kind, protocol, call)
        for kind in ("sync", "async")
        for protocol in ("grpc", "http")
        for call in ("classify", "model_config", "model_metadata", "is_ready")
        if not (kind == "async" and call == "model_metadata")  # the asyncio client has no metadata call
    ]
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        urls = {"grpc": server.grpc_url, "http": server.http_url}
        pool = ThreadPoolExecutor(max_workers=len(cases))
        os.kill(server.pid, signal.SIGSTOP)
        try:
            futures = {
                case: pool.submit(_sync_call if case[0] == "sync" else _async_call, urls[case[1]], case[1], case[2])
                for case in cases
            }
            results = {case: f.result(timeout=TIMEOUT_S + HANG_MARGIN_S + 30) for case, f in futures.items()}
        finally:
            os.kill(server.pid, signal.SIGCONT)  # a call that hung ends now, so the pool can be shut down
            pool.shutdown(wait=True)
    for case, (outcome, seconds) in sorted(results.items()):
        print(f"{'/'.join(case)}: {outcome} after {seconds:.1f} s")
    for case, (outcome, seconds) in results.items():
        assert outcome not in ("answered", "returned True"), (case, outcome)  # the server was stopped
        assert seconds <= TIMEOUT_S + HANG_MARGIN_S, (case, outcome, seconds)
