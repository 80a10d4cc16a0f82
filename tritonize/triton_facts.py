"""What tritonize relies on that is a property of one Triton release, not of its documented API.

Triton reports some things only as message text or process command lines: which stub died,
why a request was refused, which connection never reached a server. Code that decides on such
a fact reads it from here, never from a literal of its own, so an upgrade of the server (or of
the client transports) changes one module. Each fact names the version it was observed in, and
``tests/test_triton_facts.py`` pins every one against the real embedded server (Triton 2.51,
python_backend r24.10, from nvidia-pytriton 0.7.0) or the real client transport: an upgrade that
changes a fact fails that test, not a behaviour somewhere else.

This module imports nothing from tritonize: every layer may read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_TRITON_VERSION = "2.51.0"  # tritonserver bundled in nvidia-pytriton 0.7.0

# --- API groups and the admin header (Triton 2.51 ``--http-restricted-api`` / ``--grpc-restricted-protocol``)
# The flags accept exactly these group names (2.51, src/command_line_parser.cc RESTRICTED_CATEGORY).
CLIENT_APIS = ("health", "metadata", "inference", "model-config")
RESTRICTED_APIS = ("model-repository", "shared-memory", "statistics", "trace", "logging")
# 2.51's gRPC frontend looks for the configured header under this prefix in the call's metadata.
GRPC_RESTRICTED_HEADER_PREFIX = "triton-grpc-protocol-"
# A restricted call without the key: HTTP 403, but gRPC UNAVAILABLE with this text (2.51).
RESTRICTED_MESSAGE = "is restricted"

# --- scheduler refusals (2.51 dynamic batcher with a ``default_queue_policy``): HTTP 503 / gRPC
# UNAVAILABLE, a status that also means "server not there"; only the text tells them apart.
SCHEDULER_REFUSALS = ("Exceeds maximum queue size", "Request timeout expired")

# --- a Python-backend stub that died or stopped answering (2.51): the model stays READY and the
# server ready; only an inference fails, naming the instance.
_STUB_UNHEALTHY = re.compile(r"Stub process '(?P<instance>[^']+)' is not healthy")


def unhealthy_instance(message: str) -> str | None:
    """The instance named by Triton's ``Stub process '<instance>' is not healthy.``, if any."""
    match = _STUB_UNHEALTHY.search(message)
    return match["instance"] if match else None


# --- the stub's command line (python_backend r24.10 ``stub_launcher.cc``): Triton reports no stub
# PIDs, so the process table is the only place to find a server's stubs and shm regions:
#   triton_python_backend_stub <model.py> <shm region> <shm size> <shm growth> <server pid>
#                              <python lib> <ipc handle> <instance name> <runtime>
STUB_BINARY = "triton_python_backend_stub"
SHM_REGION_PREFIX = "triton_python_backend_shm_region_"
_ARG_MODEL_PY, _ARG_SHM, _ARG_SERVER_PID, _ARG_INSTANCE = 1, 2, 5, 8


@dataclass(frozen=True, kw_only=True)
class StubCommand:
    """What a stub's command line says: the server that owns it, its model, instance and shm region."""

    server_pid: int
    model: str
    instance: str
    shm_region: str


def parse_stub_command(argv: list[str]) -> StubCommand | None:
    """The :class:`StubCommand` of a process's argv, or None when it is not a Python-backend stub."""
    if len(argv) <= _ARG_INSTANCE or not argv[0].endswith(STUB_BINARY):
        return None
    try:
        server_pid = int(argv[_ARG_SERVER_PID])
    except ValueError:
        return None
    return StubCommand(
        server_pid=server_pid,
        model=Path(argv[_ARG_MODEL_PY]).parent.parent.name,  # <repository>/<model>/<version>/model.py
        instance=argv[_ARG_INSTANCE],
        shm_region=argv[_ARG_SHM],
    )


# --- client transports: a request that never reached a server (safe to send elsewhere).
# grpcio 1.6x: UNAVAILABLE "failed to connect to all addresses; ... Connection refused". Not
# "Connection reset by peer" or "Socket closed": those break a request that was already sent.
GRPC_NOT_CONNECTED = ("failed to connect", "connection refused")


def grpc_never_connected(status: str, message: str) -> bool:
    """True when a gRPC error means the channel never connected (the request was not sent)."""
    text = message.lower()
    return status == "StatusCode.UNAVAILABLE" and any(marker in text for marker in GRPC_NOT_CONNECTED)
