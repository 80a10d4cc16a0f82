"""The asyncio client against the real embedded server: results, concurrency, typed errors."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from tritonize.aio_client import AsyncTritonizeClient, map_concurrent
from tritonize.errors import ModelNotFoundError, OverloadedError, RequestTimeoutError, ServerUnavailableError

TEXTS = ["i am so happy today", "this is terrible and i hate it", "i feel a little scared of the dark"]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def _closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP peer that accepts connections and never answers (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_map_concurrent_keeps_order_and_limits_in_flight_when_items_outnumber_workers() -> None:
    in_flight, peak = 0, 0

    async def work(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (x % 3))
        in_flight -= 1
        return x * 2

    assert asyncio.run(map_concurrent(list(range(20)), work, 4)) == [x * 2 for x in range(20)]
    assert peak == 4


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_classify_returns_pipeline_shape_when_batched_or_concurrent(triton_server, protocol: str) -> None:
    async def run():
        async with AsyncTritonizeClient(_url(triton_server, protocol), protocol) as client:
            batched = await client.classify(TEXTS)
            single = await client.classify_many(TEXTS * 4, concurrency=5)
            top = await client.classify(TEXTS[:1], top_k=3)
            many = await client.classify(TEXTS * 12)  # 36 texts > max_batch_size 32: two requests
            assert await client.classify([]) == []
            return batched, single, top, many

    batched, single, top, many = asyncio.run(run())
    assert [set(r) for r in batched] == [{"label", "score"}] * 3
    assert [r["label"] for r in single] == [r["label"] for r in batched] * 4
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(single, batched * 4))
    assert len(top) == 1 and len(top[0]) == 3 and top[0][0]["label"] == batched[0]["label"]
    assert [r["label"] for r in many] == [r["label"] for r in batched] * 12


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_client_raises_model_not_found_when_model_is_unknown(triton_server, protocol: str) -> None:
    async def run():
        async with AsyncTritonizeClient(_url(triton_server, protocol), protocol) as client:
            await client.classify(TEXTS, model="no_such_model")

    with pytest.raises(ModelNotFoundError, match="no_such_model"):
        asyncio.run(run())


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_client_retries_then_raises_server_unavailable_when_nothing_listens(protocol: str, caplog) -> None:
    url = f"127.0.0.1:{_closed_port()}"

    async def run():
        async with AsyncTritonizeClient(url, protocol, timeout=5.0, retries=2, backoff_s=0.1) as client:
            await client.classify(TEXTS)

    with caplog.at_level(logging.DEBUG, logger="tritonize.aio_client"), pytest.raises(ServerUnavailableError) as info:
        asyncio.run(run())
    assert url in str(info.value) and info.value.url == url
    retries = [r.getMessage() for r in caplog.records if "refused" in r.getMessage() and "retry" in r.getMessage()]
    assert [m.split("retry ")[1].split(" ")[0] for m in retries] == ["1", "2"]  # both retries, then the error


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_client_raises_timeout_and_does_not_retry_when_server_hangs(silent_server: str, protocol: str, caplog) -> None:
    async def run():
        async with AsyncTritonizeClient(silent_server, protocol, timeout=0.5) as client:
            await client.infer_raw("distilbert_emotion", TEXTS, ["LABEL"])

    with caplog.at_level(logging.DEBUG, logger="tritonize.aio_client"), pytest.raises(RequestTimeoutError, match=silent_server) as info:
        asyncio.run(run())
    assert "no answer within 0.5 s" in str(info.value)
    assert not [r for r in caplog.records if "retry" in r.getMessage()]  # a timeout is never resent


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_client_deadline_fires_and_client_stays_usable_when_server_is_slow(constrained_server, protocol: str) -> None:
    """``distilbert_slow``'s batcher holds a lone request for its configured delay (4 s): the
    server is slow, not the client. A deadline of a quarter of it must fire; the same client then
    gets correct answers (a full batch skips the delay), so nothing hung or broke."""
    url = _url(constrained_server, protocol)
    texts = (TEXTS * 11)[:32]

    async def run():
        async with AsyncTritonizeClient(url, protocol, timeout=60.0) as patient:
            config = await patient.model_config("distilbert_slow_model")
            for attempt in range(5):  # the 20 ms-queue deployment may refuse even a lone request on a busy machine
                try:
                    expected = await patient.classify(texts, model="distilbert_emotion")
                    break
                except OverloadedError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * 2**attempt)
        delay_s = int(config["dynamic_batching"]["max_queue_delay_microseconds"]) / 1e6
        assert delay_s >= 1.0
        async with AsyncTritonizeClient(url, protocol, timeout=delay_s / 4, retries=3) as hasty:
            with pytest.raises(RequestTimeoutError, match="distilbert_slow") as info:
                await hasty.infer_raw("distilbert_slow", TEXTS[:1], ["LABEL"])
            answered = await hasty.classify(texts, model="distilbert_slow")  # 32 texts: a full batch, no delay
        return info.value, answered, expected

    error, answered, expected = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert "no answer within" in str(error)
    assert [r["label"] for r in answered] == [r["label"] for r in expected]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(answered, expected))


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_aio_generate_matches_sync_client_when_t5_is_served(triton_server, protocol: str) -> None:
    from tritonize.client import TritonizeClient

    model = "t5_small_emotion"
    if not (triton_server.repository / model).is_dir():
        pytest.skip(f"{model} is not in the test repository")
    url = _url(triton_server, protocol)

    async def run():
        async with AsyncTritonizeClient(url, protocol, timeout=60.0) as client:
            return await client.generate(TEXTS, model, max_new_tokens=2)

    generated = asyncio.run(run())
    with TritonizeClient(url, protocol, timeout=60.0) as sync:
        assert generated == sync.generate(TEXTS, model, max_new_tokens=2)
    assert [set(g) for g in generated] == [{"generated_text"}] * len(TEXTS)
