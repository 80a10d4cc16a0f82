"""Asyncio client: many requests in flight from one thread, over HTTP or gRPC.

The async twin of :class:`tritonize.client.TritonizeClient`, built on ``tritonclient.http.aio``
(aiohttp) and ``tritonclient.grpc.aio``. One connection object is created on first use and
reused for every request (HTTP keeps a small pool of keep-alive connections; gRPC multiplexes
one channel). Inputs, result parsing and error mapping are the sync client's helpers.

Failures are :class:`~tritonize.errors.ClientError` subclasses naming URL, model and cause.
A request is retried (exponential backoff, within its timeout) only when the server was
unavailable *before it accepted the request* (TCP connection refused; gRPC ``UNAVAILABLE``
while connecting), so an inference is never run twice. With several servers
(``"h1:8001,h2:8001"`` or a list) requests go round robin and a refused one goes to the next
server first (:mod:`tritonize.endpoints`).

    async with AsyncTritonizeClient("127.0.0.1:8001", "grpc") as client:
        await client.classify(["i am so happy"])               # one batched request
        await client.classify_many(texts, concurrency=16)      # one request per text, 16 in flight
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from tritonize.client import (
    DEFAULT_MODEL,
    client_target,
    generation_inputs,
    make_request,
    parse_classification,
    parse_generated,
    parse_top_k,
    wrap_error,
)
from tritonize.endpoints import EndpointPool, refused_before_accepted
from tritonize.errors import RequestTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class AsyncTritonizeClient:
    """One reused asyncio connection to a Triton server; HF pipeline-shaped results.

    ``timeout`` (seconds) bounds each call, retries included. ``retries`` is how often a
    refused connection is retried (backoff ``backoff_s``, doubling) once every server refused.
    ``url`` may name several servers; ``endpoints`` shares one pool between clients.
    ``inference_key`` is sent with every inference request (a server with inference behind a
    key). Create and use it inside one running event loop.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        protocol: str = "grpc",
        timeout: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        max_connections: int = 64,
        endpoints: EndpointPool | None = None,
        inference_key: str | None = None,
    ) -> None:
        self.protocol, self.url, self._infer_headers = client_target(url, protocol, endpoints, inference_key)
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_connections = max_connections
        self._clients: dict[str, Any] = {}  # one connection per server, made on first use
        self._module: Any = None
        self._max_batch: dict[str, int] = {}
        self.endpoints = endpoints or EndpointPool(self.url)

    # -- connection ----------------------------------------------------------------------
    def _protocol_module(self) -> Any:
        if self._module is None:
            if self.protocol == "grpc":
                import tritonclient.grpc.aio as module
            else:
                import tritonclient.http.aio as module
            self._module = module
        return self._module

    def _connection(self, url: str) -> Any:
        if url not in self._clients:
            module = self._protocol_module()
            http = {"conn_limit": self.max_connections, "conn_timeout": self.timeout}
            kwargs = {} if self.protocol == "grpc" else http
            try:
                self._clients[url] = module.InferenceServerClient(url, **kwargs)
            except Exception as exc:  # noqa: BLE001 - bad URL etc.: report with the URL
                raise wrap_error(exc, url, "-") from exc
        return self._clients[url]

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for url, client in clients.items():
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                logger.debug("closing %s failed", url, exc_info=True)

    async def __aenter__(self) -> AsyncTritonizeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, model: str, request: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``request(connection)`` on the next server within the timeout; retry only refused connections.

        Raises:
            RequestTimeoutError: no answer within ``timeout``.
            ServerUnavailableError: still refused after the retries.
            OverloadedError: the server refused the request (queue full or queue timeout); not retried here.
            ModelNotFoundError, InvalidRequestError, InferenceError: the server answered with an error.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            try:
                call = self.endpoints.acall(lambda url: self._attempt(url, model, request))
                return await asyncio.wait_for(call, timeout=max(deadline - loop.time(), 1e-3))
            except asyncio.TimeoutError as exc:  # ours, or the transport's (wrapped, naming the server that timed out)
                url = exc.url if isinstance(exc, RequestTimeoutError) else self.url
                raise RequestTimeoutError(url, model, f"no answer within {self.timeout:g} s") from exc
            except Exception as exc:  # noqa: BLE001 - every failure becomes a ClientError
                error = wrap_error(exc, self.url, model)
                delay = self.backoff_s * 2**attempt
                if not refused_before_accepted(exc) or attempt >= self.retries or loop.time() + delay >= deadline:
                    raise error from (exc.__cause__ if error is exc else exc)  # keep the transport's exception
                attempt += 1
                logger.debug("%s refused (%s); retry %d in %.2f s", self.url, exc, attempt, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, url: str, model: str, request: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return await request(self._connection(url))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ClientError naming its server
            raise wrap_error(exc, url, model) from exc

    # -- low level -----------------------------------------------------------------------
    async def model_config(self, model: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            result = await self._call(model, lambda client: client.get_model_config(model, as_json=True))
            return result.get("config", result)
        return await self._call(model, lambda client: client.get_model_config(model))

    async def max_batch_size(self, model: str) -> int:
        if model not in self._max_batch:
            config = await self.model_config(model)
            self._max_batch[model] = int(config.get("max_batch_size", 0) or 0) or 1
        return self._max_batch[model]

    async def is_ready(self, model: str | None = None) -> bool:
        """True when a server (any of several) is ready, or has ``model`` ready."""
        for url in self.endpoints.urls:
            if await self._is_ready(url, model):
                return True
        return False

    async def _is_ready(self, url: str, model: str | None) -> bool:
        client = self._connection(url)
        try:
            call = client.is_model_ready(model) if model else client.is_server_ready()
            return bool(await asyncio.wait_for(call, timeout=self.timeout))
        except Exception:  # noqa: BLE001 - not ready is an answer here
            return False

    async def infer_raw(
        self,
        model: str,
        texts: Sequence[str | bytes],
        outputs: Iterable[str],
        class_count: int = 0,
        extra_inputs: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """One inference request with ``TEXT`` (plus extra inputs); returns output arrays by name."""
        names = list(outputs)
        inputs, requested = make_request(self._protocol_module(), texts, names, class_count, extra_inputs)
        headers = self._infer_headers
        result = await self._call(model, lambda client: client.infer(model, inputs, outputs=requested, headers=headers))
        return {n: result.as_numpy(n) for n in names}

    # -- pipeline-shaped -----------------------------------------------------------------
    async def _classify_chunk(self, texts: Sequence[str | bytes], model: str, top_k: int) -> list[Any]:
        if top_k == 1:
            out = await self.infer_raw(model, texts, ["LABEL", "SCORE"])
            return parse_classification(out["LABEL"], out["SCORE"])
        out = await self.infer_raw(model, texts, ["PROBABILITIES"], class_count=top_k)
        return parse_top_k(out["PROBABILITIES"])

    async def classify(self, texts: Sequence[str | bytes], model: str = DEFAULT_MODEL, top_k: int = 1) -> list[Any]:
        """HF text-classification output; ``texts`` go as batched requests of up to max_batch_size.

        Several chunks (more texts than max_batch_size) are sent concurrently.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        step = await self.max_batch_size(model)
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
        parts = await map_concurrent(
            chunks, lambda chunk: self._classify_chunk(chunk, model, top_k), max(1, len(chunks))
        )
        return [item for part in parts for item in part]

    async def classify_many(
        self, texts: Sequence[str | bytes], model: str = DEFAULT_MODEL, top_k: int = 1, concurrency: int = 8
    ) -> list[Any]:
        """HF text-classification output; one request per text, at most ``concurrency`` in flight.

        This is how independent clients load a server; Triton's dynamic batcher merges them.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        parts = await map_concurrent(list(texts), lambda text: self._classify_chunk([text], model, top_k), concurrency)
        return [part[0] for part in parts]

    async def generate(
        self, texts: Sequence[str | bytes], model: str, max_new_tokens: int | None = None
    ) -> list[dict[str, str]]:
        """HF text2text-generation output ``[{'generated_text': ...}]``; batched like :meth:`classify`."""
        step = await self.max_batch_size(model)
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]

        async def one(chunk: Sequence[str | bytes]) -> list[dict[str, str]]:
            out = await self.infer_raw(model, chunk, ["GENERATED_TEXT"], extra_inputs=generation_inputs(len(chunk), max_new_tokens))
            return parse_generated(out["GENERATED_TEXT"])

        parts = await map_concurrent(chunks, one, max(1, len(chunks)))
        return [item for part in parts for item in part]


async def map_concurrent(items: Sequence[T], fn: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """``[await fn(x) for x in items]`` with at most ``concurrency`` in flight, results in order.

    The first failure cancels the rest and is raised.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # one shared iterator: each item is taken by one worker
            results[index] = await fn(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results
