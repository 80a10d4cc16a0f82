"""Several Triton servers behind one client: round robin, skip a server that refuses connections.

Why here and not in a proxy: a client that knows all the replicas spreads load without a load
balancer in front (a laptop, a test, Locust workers reaching pods through a headless Service),
and it can tell *where* a request failed, which a proxy hides.

The rule that keeps an inference from running twice: a request is sent again, to the next
server, only when it cannot have reached a server (TCP connection refused, gRPC ``UNAVAILABLE``
while connecting). A request that may have reached one (a broken connection, a timeout, an
answer with an error) fails with the error of that server, and is never repeated.

A server that refuses, whose connection breaks, or that no longer has the model (a stopping
Triton unloads it) is marked down and skipped for a back-off (``backoff_s``, doubling per
consecutive failure up to ``max_backoff_s``); after that it gets its turn again, and an answer to
a request sent after it was marked down brings it back. Servers that are down are still tried, last, when every other one refused, so a
client never fails without having tried every server once. The sync client, the asyncio client
and the Locust users all use one :class:`EndpointPool`; one pool can be shared by many clients
(thread- and greenlet-safe), so what one of them learns about a dead server spares the others.
"""

from __future__ import annotations

import enum
import http.client
import itertools
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from tritonize.errors import ClientError, ModelNotFoundError, ServerUnavailableError
from tritonize.triton_facts import grpc_never_connected
from tritonize.urls import check_host_port

logger = logging.getLogger(__name__)

T = TypeVar("T")

URL_SEPARATOR = ","


def join_urls(urls: str | Sequence[str] | None) -> str | None:
    """``"h1:8001,h2:8001"`` from a list (or the string as given); ``None`` stays ``None``."""
    if urls is None or isinstance(urls, str):
        return urls
    return URL_SEPARATOR.join(str(url).strip() for url in urls)


def split_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The ``host:port`` endpoints of ``"h1:8001,h2:8001"`` (or of a list), in order.

    Raises:
        ClientError: no endpoint, an endpoint listed twice, or one that is not ``host:port``.
    """
    text = join_urls(urls) or ""
    parts = tuple(part.strip() for part in text.split(URL_SEPARATOR))
    if not any(parts):
        raise ClientError(text, "-", "no server URL given; expected host:port[,host:port...]")
    for part in parts:
        check_host_port(part)
    if len(set(parts)) != len(parts):
        raise ClientError(text, "-", "a server URL is listed twice")
    return parts


# -- what a failure says about the server -------------------------------------------------------
class Failure(enum.Enum):
    """What a failed call tells the pool (decided on the transport exception, not its message)."""

    REFUSED = "refused"  # never reached a server: safe to send elsewhere; server marked down
    LOST = "lost"  # the connection failed after it may have reached the server: not repeated; server marked down
    TIMED_OUT = "timed out"  # no answer in time: not repeated; the server's state is unknown
    ANSWERED = "answered"  # the server answered with an error: it is up


def _causes(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (a ClientError wraps the transport's)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 8:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def _grpc_status(exc: BaseException) -> tuple[str, str]:
    status = exc.status() if hasattr(exc, "status") and callable(exc.status) else ""
    message = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return str(status or ""), (message or "").lower()


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):  # sync HTTP (geventhttpclient): the TCP connect failed
        return True
    aiohttp = sys.modules.get("aiohttp")  # loaded only where the asyncio HTTP client is in use
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectorError):  # asyncio HTTP: connect failed
        return True
    return grpc_never_connected(*_grpc_status(exc))


def refused_before_accepted(exc: BaseException) -> bool:
    """True when the request cannot have reached the server, so sending it again is safe.

    HTTP: the TCP connect failed (``ConnectionRefusedError``; aiohttp's ``ClientConnectorError``).
    gRPC: ``UNAVAILABLE`` because the channel could not connect (not a stream reset
    mid-request). Looks through a :class:`~tritonize.errors.ClientError` to the exception it wraps.
    """
    return any(_refused(cause) for cause in _causes(exc))


def _transport_broke(exc: BaseException) -> bool:
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError):  # ServerDisconnectedError...
        return True
    # OSError: reset / broken pipe; HTTPException: geventhttpclient's HTTPConnectionClosed on a kept-alive socket.
    return isinstance(exc, (OSError, http.client.HTTPException))


def classify_failure(exc: BaseException) -> Failure:
    """What ``exc`` (a ClientError or the transport exception) says about the server that raised it.

    A missing model counts as a lost server, not an answer: Triton unloads its models when it is
    asked to stop and keeps its ports open a little longer (measured on 2.51: ~0.5 s of gRPC
    ``NOT_FOUND`` / HTTP connection closed), and a server without the model cannot serve it anyway.
    """
    chain = _causes(exc)
    if any(_refused(cause) for cause in chain):
        return Failure.REFUSED
    if any(isinstance(cause, TimeoutError) for cause in chain):  # socket.timeout, asyncio's, RequestTimeoutError
        return Failure.TIMED_OUT
    if isinstance(exc, (ServerUnavailableError, ModelNotFoundError)) or any(_transport_broke(c) for c in chain):
        return Failure.LOST
    return Failure.ANSWERED


# -- the pool -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EndpointCounts:
    """Calls one endpoint saw, by outcome (a snapshot; see :meth:`EndpointPool.counts`)."""

    answered: int = 0  # succeeded
    refused: int = 0  # refused before the server accepted: sent to the next endpoint
    failed: int = 0  # any other failure (the error was raised to the caller)
    marked_down: int = 0  # times the endpoint was taken out of the rotation


@dataclass
class _State:
    counts: EndpointCounts
    failures_in_a_row: int = 0
    down_until: float = 0.0
    down_since: float = float("-inf")  # when it was last taken out


class EndpointPool:
    """Round robin over ``urls``; a server that refuses or drops connections sits out a back-off.

    Thread-safe (and greenlet-safe under gevent's monkey-patching); an asyncio client calls it
    from one thread. ``clock`` is injectable for tests of the back-off.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise ValueError(f"need 0 < backoff_s <= max_backoff_s, got {backoff_s} and {max_backoff_s}")
        self.urls = split_urls(urls)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._state = {url: _State(counts=EndpointCounts()) for url in self.urls}

    def __str__(self) -> str:
        return URL_SEPARATOR.join(self.urls)

    def __repr__(self) -> str:
        return f"EndpointPool({str(self)!r}, down={list(self.down())})"

    # -- state ---------------------------------------------------------------------------------
    def attempt_order(self) -> list[str]:
        """Endpoints to try for one request: those up, from the next round-robin turn; then those down."""
        with self._lock:
            now = self._clock()
            start = next(self._turn) % len(self.urls)
            rotated = self.urls[start:] + self.urls[:start]
            up = [url for url in rotated if self._state[url].down_until <= now]
            down = sorted((url for url in rotated if url not in up), key=lambda url: self._state[url].down_until)
            return up + down

    def down(self) -> tuple[str, ...]:
        """Endpoints sitting out a back-off now."""
        with self._lock:
            now = self._clock()
            return tuple(url for url in self.urls if self._state[url].down_until > now)

    def counts(self) -> dict[str, EndpointCounts]:
        """Per endpoint: calls answered, refused, failed, and how often it was marked down."""
        with self._lock:
            return {url: state.counts for url, state in self._state.items()}

    def record(self, url: str, failure: Failure | None, sent_at: float | None = None) -> None:
        """Book one call's outcome (``None``: it succeeded) and mark the endpoint up or down.

        An answer brings a server back only if the call was sent after the server was taken out
        (``sent_at``, the pool's clock): calls already in flight to a stopping server still
        complete, and must not put it back in the rotation that its failure just left.
        """
        with self._lock:
            state = self._state[url]
            counts = state.counts
            if failure is None:
                counts = replace(counts, answered=counts.answered + 1)
            elif failure is Failure.REFUSED:
                counts = replace(counts, refused=counts.refused + 1)
            else:
                counts = replace(counts, failed=counts.failed + 1)
            if failure in (Failure.REFUSED, Failure.LOST):
                state.failures_in_a_row += 1
                backoff = min(self.backoff_s * 2 ** min(state.failures_in_a_row - 1, 30), self.max_backoff_s)
                state.down_since = self._clock()
                state.down_until = state.down_since + backoff
                counts = replace(counts, marked_down=counts.marked_down + 1)
                logger.info("%s is down (%s): skipped for %.1f s", url, failure.value, backoff)
            elif failure in (None, Failure.ANSWERED) and (sent_at is None or sent_at >= state.down_since):
                state.failures_in_a_row = 0
                state.down_until = 0.0
            state.counts = counts

    # -- calls ---------------------------------------------------------------------------------
    def _after_failure(self, url: str, exc: BaseException, sent_at: float, refusals: list[BaseException]) -> None:
        """Book a failed attempt; return to try the next endpoint (refused), else re-raise."""
        failure = classify_failure(exc)
        self.record(url, failure, sent_at)
        if failure is not Failure.REFUSED:
            raise exc
        refusals.append(exc)

    def call(self, attempt: Callable[[str], T]) -> T:
        """``attempt(url)`` on the next endpoint; on a refused connection, on the one after.

        Raises:
            Whatever ``attempt`` raised, when the request may have reached that server; the
            refusal (naming every endpoint tried) when no server accepted the connection.
        """
        refusals: list[BaseException] = []
        for url in self.attempt_order():
            sent_at = self._clock()
            try:
                result = attempt(url)
            except Exception as exc:  # noqa: BLE001 - classified, then re-raised or retried elsewhere
                self._after_failure(url, exc, sent_at, refusals)
                continue
            self.record(url, None, sent_at)
            return result
        raise self._all_refused(refusals)

    async def acall(self, attempt: Callable[[str], Awaitable[T]]) -> T:
        """The asyncio twin of :meth:`call`."""
        refusals: list[BaseException] = []
        for url in self.attempt_order():
            sent_at = self._clock()
            try:
                result = await attempt(url)
            except Exception as exc:  # noqa: BLE001 - classified, then re-raised or retried elsewhere
                self._after_failure(url, exc, sent_at, refusals)
                continue
            self.record(url, None, sent_at)
            return result
        raise self._all_refused(refusals)

    def _all_refused(self, refusals: list[BaseException]) -> BaseException:
        last = refusals[-1]
        if len(refusals) == 1 or not isinstance(last, ClientError):
            return last
        causes = "; ".join(f"{getattr(e, 'url', '?')}: {getattr(e, 'cause', e)}" for e in refusals)
        error = ServerUnavailableError(str(self), last.model, f"no server accepted the connection ({causes})")
        error.__cause__ = last  # keeps refused_before_accepted() true for callers that retry later
        return error
