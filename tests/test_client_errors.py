"""Client errors are chosen by HTTP status / gRPC status code, as Triton 2.51 answers them.

What the embedded 2.51 server answered when measured (HTTP status / gRPC code):
unknown model or version 404 / NOT_FOUND; unexpected input or output name, wrong dtype, batch
over max_batch_size and the backends' own input checks 400 / INVALID_ARGUMENT; restricted admin
API 403 / UNAVAILABLE ("This protocol is restricted"); full queue or queue timeout 503 /
UNAVAILABLE; client deadline DEADLINE_EXCEEDED (gRPC) or a socket timeout (HTTP); nothing
listening: ConnectionRefusedError (HTTP) or UNAVAILABLE "failed to connect" (gRPC).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tritonize.client import TritonizeClient, classify, wrap_error
from tritonize.errors import (
    AccessDeniedError,
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RequestTimeoutError,
    ServerUnavailableError,
)
from tritonize.server import free_port

MODEL = "distilbert_emotion"
PROTOCOLS = ["grpc", "http"]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def _raw_client(server, protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module, module.InferenceServerClient(_url(server, protocol))


def _wrapped(server, protocol: str, call):
    """Run a raw tritonclient call; return the tritonize error it maps to."""
    module, client = _raw_client(server, protocol)
    try:
        call(module, client)
    except InferenceServerException as exc:
        return wrap_error(exc, _url(server, protocol), MODEL), exc
    finally:
        client.close()
    raise AssertionError("the call succeeded")


# -- the mapping itself, on exceptions shaped as tritonclient raises them ----------------------
@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("400", "input 'TEXT' of request: the thing was not found", InvalidRequestError),  # text says "not found"
        ("404", "Request for unknown model: 'x' is not found", ModelNotFoundError),
        ("503", "in ensemble 'm', Exceeds maximum queue size", OverloadedError),
        ("503", "in ensemble 'm', Request timeout expired", OverloadedError),
        ("503", "Server is stopping", ServerUnavailableError),
        ("403", "This API is restricted, expecting header 'admin-key'", AccessDeniedError),
        ("500", "Stub process 'm_model_0_0' is not healthy.", InferenceError),
        ("StatusCode.NOT_FOUND", "Request for unknown model", ModelNotFoundError),
        ("StatusCode.INVALID_ARGUMENT", "unexpected inference input 'X', model not found", InvalidRequestError),
        ("StatusCode.UNAVAILABLE", "[request id: 3] Exceeds maximum queue size", OverloadedError),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnavailableError),
        ("StatusCode.UNAVAILABLE", "This protocol is restricted, expecting header 'x'", AccessDeniedError),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", RequestTimeoutError),
        ("StatusCode.INTERNAL", "model failed", InferenceError),
    ],
)
def test_wrap_error_picks_class_from_status_when_server_answers(status: str, message: str, expected: type) -> None:
    error = wrap_error(InferenceServerException(msg=message, status=status), "h:1", "m")
    assert type(error) is expected and message in str(error) and "h:1" in str(error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), ServerUnavailableError),
        (TimeoutError("timed out"), RequestTimeoutError),
        (RuntimeError("not found"), InferenceError),  # no status: the text decides nothing
    ],
)
def test_wrap_error_maps_transport_exceptions_by_type_when_no_status(exc: BaseException, expected: type) -> None:
    assert type(wrap_error(exc, "h:1", "m")) is expected


# -- against the real server -------------------------------------------------------------------
@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_raises_model_not_found_when_model_or_version_is_unknown(triton_server, protocol: str) -> None:
    with pytest.raises(ModelNotFoundError, match="no_such_model"):
        classify(["hello"], model="no_such_model", url=_url(triton_server, protocol), protocol=protocol)
    with TritonizeClient(_url(triton_server, protocol), protocol) as client:
        with pytest.raises(ModelNotFoundError):
            client.model_config("no_such_model")

    def unknown_version(module, client):
        tensor = module.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"hello"]], dtype=object))
        client.infer(MODEL, [tensor], model_version="7")

    error, raw = _wrapped(triton_server, protocol, unknown_version)
    assert raw.status() in ("404", "StatusCode.NOT_FOUND") and isinstance(error, ModelNotFoundError)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_raises_invalid_request_not_model_not_found_when_tensor_name_is_wrong(triton_server, protocol: str) -> None:
    with TritonizeClient(_url(triton_server, protocol), protocol) as client:
        with pytest.raises(InvalidRequestError, match="BOGUS") as bad_input:
            client.infer_raw(MODEL, ["hello"], ["LABEL"], extra_inputs={"BOGUS": np.ones((1, 1), np.int32)})
        with pytest.raises(InvalidRequestError, match="NOPE"):
            client.infer_raw(MODEL, ["hello"], ["NOPE"])
        with pytest.raises(InvalidRequestError, match="empty"):
            client.classify([""])
        assert not isinstance(bad_input.value, ModelNotFoundError)
        assert client.classify(["still fine"])[0]["label"]


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_t5_deployment_refuses_request_without_text_when_only_optional_input_sent(triton_server, protocol: str) -> None:
    """Found by the binary fuzzer: 2.51 checks only the input count for a model with optional
    inputs, so the entry model itself must refuse a request without ``TEXT`` (was a 500)."""
    model = "t5_small_emotion"
    if not (triton_server.repository / model).is_dir():
        pytest.skip(f"{model} is not in the test repository")

    def tokens_only(module, client):
        tensor = module.InferInput("max_new_tokens", [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[2]], dtype=np.int32))
        client.infer(model, [tensor])

    with TritonizeClient(_url(triton_server, protocol), protocol, timeout=60) as client:
        before = client.generate(["still fine"], model, max_new_tokens=3)
        error, raw = _wrapped(triton_server, protocol, tokens_only)
        assert client.generate(["still fine"], model, max_new_tokens=3) == before
    assert raw.status() in ("400", "StatusCode.INVALID_ARGUMENT"), raw
    assert isinstance(error, InvalidRequestError) and "input TEXT is required" in str(error)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_error_is_access_denied_when_admin_api_called_without_key(triton_server, protocol: str) -> None:
    error, raw = _wrapped(triton_server, protocol, lambda module, client: client.get_model_repository_index())
    assert raw.status() in ("403", "StatusCode.UNAVAILABLE")
    assert isinstance(error, AccessDeniedError)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_raises_server_unavailable_when_nothing_listens(protocol: str) -> None:
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnavailableError, match=url):
        classify(["hello"], url=url, protocol=protocol, timeout=5)


def _queue_ns(server, model: str) -> tuple[int, int]:
    """(successful requests, queue nanoseconds) of ``model`` from the statistics extension."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model, headers={"admin-key": server.admin_key})
        stats = stats["model_stats"][0]["inference_stats"]
    finally:
        client.close()
    return int(stats["success"]["count"]), int(stats["queue"]["ns"])


def _classify_when_admitted(client: TritonizeClient, texts: list[str], model: str, attempts: int = 5):
    """The constrained deployment refuses a request that queued over 20 ms: on a busy machine even a
    lone one. Refusals mean "retry later" (``OverloadedError``), so the reference answer is retried."""
    for attempt in range(attempts):
        try:
            return client.classify(texts, model=model)
        except OverloadedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_client_deadline_fires_when_server_is_slow(constrained_server, protocol: str) -> None:
    """``distilbert_slow``'s batcher holds a lone request 4 s (config), so the server is really slow."""
    url = _url(constrained_server, protocol)
    step = "distilbert_slow_model"
    with TritonizeClient(url, protocol, timeout=60.0) as patient:
        delay_us = int(patient.model_config(step)["dynamic_batching"]["max_queue_delay_microseconds"])
        expected = _classify_when_admitted(patient, ["i am so happy"], "distilbert_emotion")
    assert delay_us >= 1_000_000
    start = _queue_ns(constrained_server, step)
    with TritonizeClient(url, protocol, timeout=delay_us / 1e6 / 4) as hasty:
        with pytest.raises(RequestTimeoutError, match="distilbert_slow"):
            hasty.classify(["i am so happy"], model="distilbert_slow")
    # the server still runs the abandoned request once the delay is over; wait for it (bounded)
    # so the next request is alone in the batcher
    deadline = time.monotonic() + 60
    while (before := _queue_ns(constrained_server, step))[0] == start[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert before[0] == start[0] + 1, "the abandoned request never finished on the server"
    with TritonizeClient(url, protocol, timeout=60.0) as patient:
        assert patient.classify(["i am so happy"], model="distilbert_slow") == expected
    after = _queue_ns(constrained_server, step)
    # the server, not the client, took the time: the answered request queued for the batcher's delay
    assert after[0] - before[0] == 1 and after[1] - before[1] >= delay_us * 1000 * 0.9
