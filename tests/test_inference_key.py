"""Inference behind a key on the real embedded server: the 2.51 crashers are refused before the parser.

``tritonize serve`` on a non-loopback host restricts the ``inference`` API group to the
``inference-key`` header. Triton 2.51 checks a restriction before it reads the request body
(:data:`tritonize.triton_facts.RESTRICTION_CHECKED_BEFORE_BODY`), so every request that stops
2.51 (``tests/_crashers.py``; each one kills an open server, see the strict xfails in
``test_fuzz.py``) is refused without the key and the server lives; clients, the Locust users, the
bench and the commands that send the key get answers. The server here binds loopback with the
restriction forced on, so the test exposes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import _crashers
import pytest

from tritonize.errors import AccessDeniedError

pytestmark = pytest.mark.triton
MODEL = _crashers.MODEL
TEXTS = ["i am so happy today", "this is terrible and i hate it"]
REFUSED = (403, "StatusCode.UNAVAILABLE")  # what 2.51 answers a restricted API over HTTP / gRPC


@pytest.fixture(scope="module")
def keyed_server(classifier_repository: Path, tritonize_cache: Path) -> Iterator[object]:
    pytest.importorskip("pytriton")
    from conftest import loopback_config

    from tritonize.server import EmbeddedServer

    config = dataclasses.replace(loopback_config(classifier_repository), restrict_inference=True)
    server = EmbeddedServer(config, cache_dir=tritonize_cache).start()
    try:
        yield server
    finally:
        server.stop()


def _key(server) -> str:
    return server.config.client_inference_key


def _answers(server) -> str:
    from tritonize.client import classify

    return classify(TEXTS[:1], url=server.grpc_url, inference_key=_key(server))[0]["label"]


@pytest.mark.parametrize("crasher", sorted(_crashers.SENDERS))
def test_crasher_without_the_key_is_refused_and_the_server_keeps_answering(keyed_server, crasher):
    status = _crashers.SENDERS[crasher](keyed_server, None)
    assert status in REFUSED, f"{crasher}: got {status!r}, log:\n{keyed_server.log_tail()}"
    assert keyed_server.is_running()
    assert _answers(keyed_server)


def test_a_wrong_key_is_refused_like_none(keyed_server):
    from tritonize.server import inference_headers

    assert _crashers.send_nested_body(keyed_server, inference_headers("http", "not-the-key")) == 403
    assert keyed_server.is_running()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_keyed_client_gets_answers_and_a_keyless_one_access_denied(keyed_server, protocol):
    from tritonize.client import TritonizeClient

    url = keyed_server.grpc_url if protocol == "grpc" else keyed_server.http_url
    with TritonizeClient(url, protocol, timeout=30, inference_key=_key(keyed_server)) as client:
        assert [r["label"] for r in client.classify(TEXTS)] and len(client.classify(TEXTS, top_k=2)[0]) == 2
    with TritonizeClient(url, protocol, timeout=30) as client:
        with pytest.raises(AccessDeniedError, match="access denied"):
            client.classify(TEXTS)
        assert client.max_batch_size(MODEL) >= 1  # model config stays open: only inference is keyed


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_keyed_asyncio_client_gets_answers(keyed_server, protocol):
    from tritonize.aio_client import AsyncTritonizeClient

    url = keyed_server.grpc_url if protocol == "grpc" else keyed_server.http_url

    async def run() -> list:
        async with AsyncTritonizeClient(url, protocol, timeout=30, inference_key=_key(keyed_server)) as client:
            return await client.classify_many(TEXTS, concurrency=2)

    assert len(asyncio.run(run())) == len(TEXTS)


def test_classify_command_sends_the_key_from_the_environment(keyed_server, monkeypatch, capsys):
    from tritonize.cli import main
    from tritonize.server import INFERENCE_KEY_ENV

    monkeypatch.setenv(INFERENCE_KEY_ENV, _key(keyed_server))
    assert main(["classify", "--url", keyed_server.grpc_url, *TEXTS]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(TEXTS)
    monkeypatch.delenv(INFERENCE_KEY_ENV)
    assert main(["classify", "--url", keyed_server.grpc_url, TEXTS[0]]) == 1
    assert "access denied" in capsys.readouterr().err


def test_watchdog_probe_and_bench_driver_send_the_key(keyed_server):
    from tritonize.bench import drivers
    from tritonize.serving.probe import Prober

    assert Prober(keyed_server.http_url, inference_key=_key(keyed_server)).probe(MODEL).ok
    refused = Prober(keyed_server.http_url).probe(MODEL)
    assert not refused.ok and refused.http_status == 403
    seconds, latencies = asyncio.run(drivers.closed_loop(keyed_server.grpc_url, "grpc", MODEL, TEXTS * 2, 2, _key(keyed_server)))
    assert len(latencies) == 4 and seconds > 0


@pytest.mark.slow
def test_locust_users_send_the_key_given_to_the_load_test(keyed_server, tmp_path):
    from tritonize.loadtest.runner import LoadtestConfig, locust_command, run_loadtest

    config = LoadtestConfig(
        out=tmp_path,
        protocol="grpc",
        users=2,
        spawn_rate=2,
        run_time="3s",
        url=keyed_server.grpc_url,
        metrics_url=keyed_server.metrics_url,
        admin_key=keyed_server.config.admin_key,
        inference_key=_key(keyed_server),
        progress=False,
    )
    assert _key(keyed_server) not in " ".join(locust_command(config))  # by environment, not in the argument list
    client = run_loadtest(config).client
    assert client.requests > 0 and client.failures == 0
