"""Load generators: closed loop, open loop and multi-process saturation against a running server.

All send real requests with the project's asyncio client (one reused connection: a keep-alive
pool over HTTP with binary tensors, one multiplexed channel over gRPC). A single client process
is what most users run; :func:`saturate` adds processes because one Python client can be the
bottleneck before the server is (measured on the tiny deployment), so "served at saturation"
is the server's limit, not the client's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import dataclass

from tritonize.bench.cpu import OwnCpu

OUTPUTS = ["LABEL", "SCORE"]


async def closed_loop(
    url: str, protocol: str, model: str, texts: list[str], concurrency: int, inference_key: str | None = None
) -> tuple[float, list[float]]:
    """``len(texts)`` single-text requests with ``concurrency`` in flight; (seconds, latencies)."""
    from tritonize.aio_client import AsyncTritonizeClient, map_concurrent

    latencies: list[float] = []
    async with AsyncTritonizeClient(url, protocol, timeout=120.0, inference_key=inference_key) as client:

        async def one(text: str) -> None:
            start = time.perf_counter()
            await client.infer_raw(model, [text], OUTPUTS)
            latencies.append(time.perf_counter() - start)

        await map_concurrent(texts[: max(concurrency, 4)], one, concurrency)  # warm-up: connections, sessions
        latencies.clear()
        start = time.perf_counter()
        await map_concurrent(texts, one, concurrency)
        return time.perf_counter() - start, latencies


def request_chunks(texts: list[str], per_request: int) -> list[list[str]]:
    """``texts`` as requests of ``per_request`` texts each (wrapping around at the end)."""
    chunks = [[texts[(i + j) % len(texts)] for j in range(per_request)] for i in range(0, len(texts), per_request)]
    return chunks or [texts]


async def open_loop(
    url: str,
    protocol: str,
    model: str,
    texts: list[str],
    rate: float,
    duration: float,
    texts_per_request: int = 1,
    refused: list[int] | None = None,
    inference_key: str | None = None,
) -> tuple[float, list[float]]:
    """Requests of ``texts_per_request`` texts sent at a fixed ``rate`` (requests/s) for
    ``duration`` s; latency from the scheduled send (no coordinated omission).

    A request the server refuses (full queue: :class:`~tritonize.errors.OverloadedError`) has no
    latency: it is counted into ``refused`` (one number appended) instead of ending the run, so an
    open loop faster than the server reports how much it refused.
    """
    from tritonize.aio_client import AsyncTritonizeClient
    from tritonize.errors import OverloadedError

    count = max(1, int(rate * duration))
    latencies: list[float] = []
    chunks = request_chunks(texts, texts_per_request)
    async with AsyncTritonizeClient(url, protocol, timeout=120.0, inference_key=inference_key) as client:
        await client.infer_raw(model, chunks[0], OUTPUTS)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        refusals = 0

        async def one(index: int) -> None:
            nonlocal refusals
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                await client.infer_raw(model, chunks[index % len(chunks)], OUTPUTS)
            except OverloadedError:
                refusals += 1
                return
            latencies.append(loop.time() - scheduled)

        await asyncio.gather(*(one(i) for i in range(count)))
        if refused is not None:
            refused.append(refusals)
        return loop.time() - start, latencies


async def generate_closed_loop(
    url: str, model: str, texts: list[str], concurrency: int, max_new_tokens: int, inference_key: str | None = None
) -> float:
    """Single-text ``generate`` requests over gRPC with ``concurrency`` in flight; seconds."""
    from tritonize.aio_client import AsyncTritonizeClient, map_concurrent

    async with AsyncTritonizeClient(url, "grpc", timeout=300.0, inference_key=inference_key) as client:
        await client.generate(texts[:2], model, max_new_tokens)
        start = time.perf_counter()
        await map_concurrent(texts, lambda text: client.generate([text], model, max_new_tokens), concurrency)
        return time.perf_counter() - start


# -- saturation from several processes --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Saturation:
    """One saturation run: ``processes`` client processes, each with ``in_flight`` requests of
    ``texts_per_request`` texts, for ``duration`` seconds."""

    url: str
    protocol: str
    model: str
    texts_per_request: int
    processes: int
    in_flight: int
    duration: float
    inference_key: str | None = None


def default_client_processes() -> int:
    """Half the cores (the server needs the rest), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


async def _worker_loop(run: Saturation, texts: list[str], ready, go) -> tuple[int, float, list[float]]:
    from tritonize.aio_client import AsyncTritonizeClient

    chunks = request_chunks(texts, run.texts_per_request)
    latencies: list[float] = []
    done = 0
    client = AsyncTritonizeClient(
        run.url, run.protocol, timeout=120.0, max_connections=run.in_flight, inference_key=run.inference_key
    )
    async with client:
        await asyncio.gather(*(client.infer_raw(run.model, chunks[i % len(chunks)], OUTPUTS) for i in range(run.in_flight)))
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        start = time.perf_counter()
        deadline = start + run.duration

        async def user(k: int) -> None:
            nonlocal done
            i = k
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                await client.infer_raw(run.model, chunks[i % len(chunks)], OUTPUTS)
                latencies.append(time.perf_counter() - sent)
                done += len(chunks[i % len(chunks)])
                i += run.in_flight

        await asyncio.gather(*(user(k) for k in range(run.in_flight)))
        return done, time.perf_counter() - start, latencies


def _worker(run: Saturation, texts: list[str], ready, go, results) -> None:
    try:
        results.put(asyncio.run(_worker_loop(run, texts, ready, go)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        ready.set()
        results.put(exc)


def saturate(run: Saturation, texts: list[str]) -> tuple[float, list[float], int, float | None]:
    """Start the client processes, release them together; (seconds, latencies, texts done, CPU share).

    The CPU share (see :mod:`tritonize.bench.cpu`) covers only the timed window, not the start-up.

    Processes are spawned (not forked: gRPC does not survive a fork) and warmed up (connections
    open, one request each) before the clock starts.

    Raises:
        ClientError: a request failed in a client process.
    """
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    readies = [context.Event() for _ in range(run.processes)]
    workers = [context.Process(target=_worker, args=(run, texts, r, go, results), daemon=True) for r in readies]
    for process in workers:
        process.start()
    try:
        for ready in readies:
            ready.wait(timeout=120)
        with OwnCpu() as own:
            go.set()
            outcomes = [results.get(timeout=run.duration + 180) for _ in workers]
    finally:
        for process in workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        raise failures[0]
    seconds = max(o[1] for o in outcomes)
    return seconds, [x for o in outcomes for x in o[2]], sum(o[0] for o in outcomes), own.share
