"""Synchronous client: Hugging Face pipeline-shaped results from a Triton deployment.

Built on ``tritonclient`` so a Triton user recognises every request. ``classify`` returns
what ``pipeline("text-classification")`` returns: ``[{'label': 'joy', 'score': 0.98}, ...]``
(one dict per input), or a list of ``top_k`` dicts per input when ``top_k > 1``; the top-k
path uses Triton's classification extension (``class_count``) on ``PROBABILITIES``.
Errors are :class:`~tritonize.errors.ClientError` subclasses naming URL, model and cause.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tritonize.endpoints import EndpointPool, join_urls
from tritonize.errors import (
    AccessDeniedError,
    ClientError,
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RequestTimeoutError,
    ServerUnavailableError,
)
from tritonize.triton_facts import RESTRICTED_MESSAGE, SCHEDULER_REFUSALS
from tritonize.urls import PROTOCOLS, check_host_port, check_protocol, default_url

DEFAULT_MODEL = "distilbert_emotion"
DEFAULT_URLS = {protocol: default_url(protocol) for protocol in PROTOCOLS}
check_url = check_host_port  # host:port as tritonclient wants it (ClientError otherwise)


def to_text_input(texts: Sequence[str | bytes]) -> np.ndarray:
    """Texts -> BYTES tensor of shape [n, 1] (the deployments' ``TEXT`` input)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("pass a list of texts, not a single string")
    items = [t if isinstance(t, bytes) else str(t).encode("utf-8") for t in texts]
    return np.array(items, dtype=np.object_).reshape(-1, 1)


def decode_text(item: Any) -> str:
    """A BYTES tensor element as str."""
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def parse_classification(label: np.ndarray, score: np.ndarray) -> list[dict[str, Any]]:
    """LABEL [n,1] + SCORE [n,1] -> ``[{'label': ..., 'score': ...}]``."""
    return [{"label": decode_text(lab), "score": float(s)} for lab, s in zip(label.reshape(-1), score.reshape(-1))]


def parse_top_k(classes: np.ndarray) -> list[list[dict[str, Any]]]:
    """Classification-extension strings ``b"score:index:label"`` [n, k] -> lists of dicts."""
    rows = []
    for row in classes.reshape(classes.shape[0], -1):
        entries = []
        for item in row:
            score, _index, label = decode_text(item).split(":", 2)
            entries.append({"label": label, "score": float(score)})
        rows.append(entries)
    return rows


def generation_inputs(rows: int, max_new_tokens: int | None) -> dict[str, np.ndarray]:
    """The optional inputs of a text2text request of ``rows`` texts: ``max_new_tokens`` when given."""
    if max_new_tokens is None:
        return {}
    return {"max_new_tokens": np.full((rows, 1), max_new_tokens, dtype=np.int32)}


def parse_generated(generated: np.ndarray) -> list[dict[str, str]]:
    """HF text2text-generation output ``[{'generated_text': ...}]`` from ``GENERATED_TEXT``."""
    return [{"generated_text": decode_text(t)} for t in generated.reshape(-1)]


def client_target(
    url: str | Sequence[str] | None, protocol: str, endpoints: EndpointPool | None, inference_key: str | None
) -> tuple[str, str, Any]:
    """A client's checked protocol, its URL (``endpoints``' servers, else ``url``, several joined
    for scale-out as "h1:8001,h2:8001", else the protocol's default) and its inference headers."""
    from tritonize.server import inference_headers

    url = str(endpoints) if endpoints is not None else join_urls(url)
    protocol = check_protocol(protocol)
    return protocol, check_url(url or DEFAULT_URLS[protocol]), inference_headers(protocol, inference_key)


def _error_text(exc: BaseException) -> tuple[str, str]:
    """(status, message) of a tritonclient or transport exception.

    ``InferenceServerException.status()`` is the HTTP status as a string (``"404"``) for the
    HTTP clients and ``str(grpc.StatusCode)`` (``"StatusCode.NOT_FOUND"``) for the gRPC ones.
    """
    status = ""
    if hasattr(exc, "status") and callable(exc.status):
        status = str(exc.status() or "")
    message = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return status, message or exc.__class__.__name__


# What Triton 2.51 answers, measured against the embedded server (tests/test_client_errors.py):
# unknown model or version 404 / NOT_FOUND; bad input name, dtype, shape, batch size and the
# backends' input checks 400 / INVALID_ARGUMENT; full queue and queue timeout 503 / UNAVAILABLE;
# restricted admin API 403 over HTTP but UNAVAILABLE over gRPC; client deadline DEADLINE_EXCEEDED.
_BY_STATUS: dict[str, type[ClientError]] = {
    "400": InvalidRequestError,
    "401": AccessDeniedError,
    "403": AccessDeniedError,
    "404": ModelNotFoundError,
    "408": RequestTimeoutError,
    "503": OverloadedError,
    "504": RequestTimeoutError,
    "StatusCode.INVALID_ARGUMENT": InvalidRequestError,
    "StatusCode.OUT_OF_RANGE": InvalidRequestError,
    "StatusCode.NOT_FOUND": ModelNotFoundError,
    "StatusCode.PERMISSION_DENIED": AccessDeniedError,
    "StatusCode.UNAUTHENTICATED": AccessDeniedError,
    "StatusCode.DEADLINE_EXCEEDED": RequestTimeoutError,
    "StatusCode.RESOURCE_EXHAUSTED": OverloadedError,
    "StatusCode.UNAVAILABLE": OverloadedError,
}
# UNAVAILABLE / 503 is the only status that means several things, so only there does the text
# decide: Triton's scheduler refusals are OverloadedError; Triton's gRPC frontend also answers a
# restricted API with UNAVAILABLE; anything else (gRPC could not connect, the connection broke,
# the server is stopping) means the server is not there to serve.
_UNAVAILABLE = {"503", "StatusCode.UNAVAILABLE"}


def _class_for(status: str, message: str) -> type[ClientError]:
    cls = _BY_STATUS.get(status, InferenceError)
    if status in _UNAVAILABLE and not any(text in message for text in SCHEDULER_REFUSALS):
        return AccessDeniedError if RESTRICTED_MESSAGE in message else ServerUnavailableError
    return cls


def _is_aiohttp_connection_error(exc: BaseException) -> bool:
    """aiohttp's connection errors (``ServerDisconnectedError``...) are not ``OSError``s."""
    aiohttp = sys.modules.get("aiohttp")  # loaded only if the aio HTTP client is in use
    return aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError)


_CAUSES: dict[type[ClientError], str] = {
    OverloadedError: "server overloaded, retry later",
    ServerUnavailableError: "server not available",
    RequestTimeoutError: "request timed out",
    AccessDeniedError: "access denied",
}


def wrap_error(exc: BaseException, url: str, model: str) -> ClientError:
    """Map a tritonclient/transport exception to the tritonize client error tree.

    The HTTP status or gRPC status code decides the class (see ``_BY_STATUS``); exceptions that
    carry none come from the transport: a timeout, or a connection that failed.
    """
    if isinstance(exc, ClientError):
        return exc
    status, message = _error_text(exc)
    if status:
        cls = _class_for(status, message)
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        cls = RequestTimeoutError
    elif isinstance(exc, (ConnectionError, OSError)) or _is_aiohttp_connection_error(exc):
        cls = ServerUnavailableError
    else:
        cls = InferenceError
    cause = _CAUSES.get(cls)
    return cls(url, model, f"{cause} ({message})" if cause else message)


class TritonizeClient:
    """One reused connection to a Triton server over HTTP or gRPC.

    ``timeout`` (seconds) bounds each request. Texts beyond the deployment's max_batch_size
    are sent in several requests, so any list length works.

    Several servers: ``url="h1:8001,h2:8001"`` (or a list) keeps one connection to each and
    sends each request to the next one, round robin (see :mod:`tritonize.endpoints`: a server
    that refuses connections is skipped, and only a request that never reached one is resent).
    ``endpoints`` shares one :class:`~tritonize.endpoints.EndpointPool` between clients.
    ``inference_key`` is sent with every inference request, for a server that puts inference
    behind a key (``tritonize serve`` on a non-loopback host).
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        protocol: str = "grpc",
        timeout: float = 30.0,
        endpoints: EndpointPool | None = None,
        inference_key: str | None = None,
    ) -> None:
        self.protocol, self.url, self._infer_headers = client_target(url, protocol, endpoints, inference_key)
        self.timeout = timeout
        self._max_batch: dict[str, int] = {}
        try:
            if protocol == "grpc":
                import tritonclient.grpc as module
            else:
                import tritonclient.http as module
            self._module = module
            kwargs = {} if protocol == "grpc" else {"connection_timeout": timeout, "network_timeout": timeout}
            self.endpoints = endpoints or EndpointPool(self.url)
            self._clients = {u: module.InferenceServerClient(u, **kwargs) for u in self.endpoints.urls}
        except Exception as exc:  # noqa: BLE001 - bad URL etc.: report with the URL
            raise wrap_error(exc, self.url, "-") from exc

    # -- low level -----------------------------------------------------------------------
    def _call(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``<connection>.<method>(*args, **kwargs)`` on the next server (see :mod:`tritonize.endpoints`)."""

        def attempt(url: str) -> Any:
            try:
                return getattr(self._clients[url], method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a ClientError naming its server
                raise wrap_error(exc, url, model) from exc

        return self.endpoints.call(attempt)

    def max_batch_size(self, model: str) -> int:
        if model not in self._max_batch:
            config = self.model_config(model)
            self._max_batch[model] = int(config.get("max_batch_size", 0)) or 1
        return self._max_batch[model]

    def model_config(self, model: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            result = self._call(model, "get_model_config", model, as_json=True, client_timeout=self.timeout)
            return result.get("config", result)
        return self._call(model, "get_model_config", model)

    def model_metadata(self, model: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            return self._call(model, "get_model_metadata", model, as_json=True, client_timeout=self.timeout)
        return self._call(model, "get_model_metadata", model)

    def is_ready(self, model: str | None = None) -> bool:
        """True when a server (any of several) is ready, or has ``model`` ready."""
        return any(self._is_ready(url, model) for url in self.endpoints.urls)

    def _is_ready(self, url: str, model: str | None) -> bool:
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}  # HTTP: network_timeout
        try:
            if model:
                return bool(self._clients[url].is_model_ready(model, **kwargs))
            return bool(self._clients[url].is_server_ready(**kwargs))
        except Exception:  # noqa: BLE001 - not ready is an answer here
            return False

    def infer_raw(
        self,
        model: str,
        texts: Sequence[str | bytes],
        outputs: Iterable[str],
        class_count: int = 0,
        extra_inputs: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """One inference request with ``TEXT`` (plus extra inputs); returns output arrays by name."""
        names = list(outputs)
        inputs, requested = make_request(self._module, texts, names, class_count, extra_inputs)
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        result = self._call(model, "infer", model, inputs, outputs=requested, headers=self._infer_headers, **kwargs)
        return {n: result.as_numpy(n) for n in names}

    # -- pipeline-shaped -----------------------------------------------------------------
    def classify(self, texts: Sequence[str | bytes], model: str = DEFAULT_MODEL, top_k: int = 1) -> list[Any]:
        """HF text-classification pipeline output for ``texts`` (see module docstring)."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        results: list[Any] = []
        step = self.max_batch_size(model)
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            if top_k == 1:
                out = self.infer_raw(model, chunk, ["LABEL", "SCORE"])
                results.extend(parse_classification(out["LABEL"], out["SCORE"]))
            else:
                out = self.infer_raw(model, chunk, ["PROBABILITIES"], class_count=top_k)
                results.extend(parse_top_k(out["PROBABILITIES"]))
        return results

    def generate(
        self, texts: Sequence[str | bytes], model: str, max_new_tokens: int | None = None
    ) -> list[dict[str, str]]:
        """HF text2text-generation pipeline output: ``[{'generated_text': ...}]`` per input."""
        results: list[dict[str, str]] = []
        step = self.max_batch_size(model)
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            out = self.infer_raw(model, chunk, ["GENERATED_TEXT"], extra_inputs=generation_inputs(len(chunk), max_new_tokens))
            results.extend(parse_generated(out["GENERATED_TEXT"]))
        return results

    def close(self) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                pass

    def __enter__(self) -> TritonizeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_request(
    module: Any,
    texts: Sequence[str | bytes],
    outputs: list[str],
    class_count: int = 0,
    extra_inputs: dict[str, np.ndarray] | None = None,
) -> tuple[list[Any], list[Any]]:
    """(inputs, requested outputs) for ``tritonclient.http`` / ``.grpc`` (or their aio twins).

    ``class_count`` applies to ``PROBABILITIES``, the output with a ``label_filename``.
    """
    from tritonclient.utils import np_to_triton_dtype

    # HTTP: tensors travel as binary after the JSON header, never as JSON lists (tritonclient's
    # default, spelled out because JSON BYTES would cost a base64/escape pass per text).
    binary = {"binary_data": True} if module.__name__.startswith("tritonclient.http") else {}
    data = to_text_input(texts)
    inputs = [module.InferInput("TEXT", list(data.shape), "BYTES")]
    inputs[0].set_data_from_numpy(data, **binary)
    for name, array in (extra_inputs or {}).items():
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, **binary)
        inputs.append(tensor)
    requested = [
        module.InferRequestedOutput(n, class_count=class_count if n == "PROBABILITIES" else 0, **binary) for n in outputs
    ]
    return inputs, requested


def classify(
    texts: Sequence[str | bytes],
    model: str = DEFAULT_MODEL,
    url: str | Sequence[str] | None = None,
    protocol: str = "grpc",
    top_k: int = 1,
    timeout: float = 30.0,
    inference_key: str | None = None,
) -> list[Any]:
    """One-call convenience: ``classify(["I love it"])`` -> ``[{'label': 'joy', 'score': ...}]``.

    ``url`` may name several servers (``"h1:8001,h2:8001"`` or a list): see :class:`TritonizeClient`.
    """
    with TritonizeClient(url, protocol, timeout, inference_key=inference_key) as client:
        return client.classify(texts, model=model, top_k=top_k)


def generate(
    texts: Sequence[str | bytes],
    model: str,
    url: str | Sequence[str] | None = None,
    protocol: str = "grpc",
    max_new_tokens: int | None = None,
    timeout: float = 60.0,
    inference_key: str | None = None,
) -> list[dict[str, str]]:
    with TritonizeClient(url, protocol, timeout, inference_key=inference_key) as client:
        return client.generate(texts, model=model, max_new_tokens=max_new_tokens)
