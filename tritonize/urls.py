"""Triton's endpoints as text: the two protocols, Triton's default ports, ``host:port`` parsing.

One definition of each. Every client, command, server config and generated deployment file
takes the protocols and default ports from here, and every place that turns a user's URL into
what a transport wants goes through these functions: tritonclient wants ``host:port`` without
a scheme (it fails late and noisily on ``http://``), urllib wants ``http://host:port``.
"""

from __future__ import annotations

import enum

from tritonize.errors import ClientError


class Protocol(str, enum.Enum):
    """KServe v2 transports Triton serves; the values are tritonclient's module names."""

    GRPC = "grpc"
    HTTP = "http"


PROTOCOLS = tuple(p.value for p in Protocol)  # CLI choices; gRPC first, the default
LOOPBACK = "127.0.0.1"
# Triton's own defaults (``--http-port``, ``--grpc-port``, ``--metrics-port``).
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
DEFAULT_PORTS = {Protocol.HTTP.value: HTTP_PORT, Protocol.GRPC.value: GRPC_PORT, "metrics": METRICS_PORT}


def default_url(endpoint: str) -> str:
    """``127.0.0.1:<Triton's default port>`` of ``endpoint`` (``grpc``, ``http`` or ``metrics``)."""
    return f"{LOOPBACK}:{DEFAULT_PORTS[str(getattr(endpoint, 'value', endpoint))]}"


def check_protocol(protocol: str) -> str:
    """``protocol`` itself when it is one of :data:`PROTOCOLS`. Raises ValueError otherwise."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return str(protocol)


def check_host_port(url: str) -> str:
    """``url`` itself when it is ``host:port`` as tritonclient wants it.

    Raises:
        ClientError: a scheme (``http://``), no port, or a port outside 1..65535; the message
            shows the form expected.
    """
    host, _, port = url.rpartition(":")
    problem = None
    if "://" in url:
        problem = f"give host:port without a scheme, e.g. {default_url('http')}"
    elif not host or not port.isdigit() or not 0 < int(port) < 65536:
        problem = f"give host:port with a port in 1..65535, e.g. {default_url('grpc')}"
    if problem:
        raise ClientError(url or "<empty>", "-", problem)
    return url


def without_scheme(url: str) -> str:
    """``host:port`` of ``http://host:port/`` (and of ``host:port`` itself)."""
    return url.split("://", 1)[-1].rstrip("/")


def http_base(url: str) -> str:
    """``http://host:port`` for urllib: a scheme is added when ``url`` has none."""
    url = url.rstrip("/")
    return url if "://" in url else f"http://{url}"


def port_of(url: str, default: int = 80) -> int:
    """The port of ``[scheme://]host:port``, ``default`` when it names none."""
    host_port = without_scheme(url)
    _, sep, port = host_port.rpartition(":")
    return int(port) if sep and port.isdigit() else default
