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
# The flags accept exactly these group names, in this order (server src/restricted_features.h
# RESTRICTED_CATEGORY_NAMES: the same nine in 2.51.0 and 2.71.0; `tritonserver --help` lists them).
API_GROUPS = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)
# tritonize's split of them: what an inference client needs stays open, the rest needs the admin key.
CLIENT_APIS = ("health", "metadata", "inference", "model-config")
RESTRICTED_APIS = ("model-repository", "shared-memory", "statistics", "trace", "logging")
# 2.51's gRPC frontend looks for the configured header under this prefix in the call's metadata
# (server src/grpc/grpc_server.h kRestrictedProtocolHeaderTemplate; unchanged in 2.71.0).
GRPC_RESTRICTED_HEADER_PREFIX = "triton-grpc-protocol-"
# In 2.51.0 (and 2.71.0) HTTPAPIServer::HandleInfer checks the "inference" restriction first, before
# the body is decompressed, gathered or parsed (server src/http_server.cc): a request without the
# header never reaches the JSON parser or the tensor readers.
RESTRICTION_CHECKED_BEFORE_BODY = "2.51.0"
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


# --- flags tritonize sets, per Triton version (the embedded 2.51 and the pinned NGC release differ)
def version(text: str) -> tuple[int, ...]:
    """``"2.59.1"`` -> (2, 59, 1): Triton versions are plain dotted numbers."""
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True, kw_only=True)
class Flag:
    """A tritonserver flag tritonize sets, the first Triton version that has it, and its default there."""

    name: str
    since: str
    default: str = ""
    source: str = ""


FLAGS = {
    flag.name: flag
    for flag in (
        Flag(name="http-restricted-api", since="2.51.0", source="observed in the embedded 2.51.0 --help"),
        Flag(name="grpc-restricted-protocol", since="2.51.0", source="observed in the embedded 2.51.0 --help"),
        Flag(
            name="cuda-memory-pool-byte-size",
            since="2.51.0",
            default="64 MiB per GPU",
            source="server src/command_line_parser.cc (2.51.0 .. 2.71.0)",
        ),
        Flag(
            name="http-max-input-size",
            since="2.59.0",
            default="64 MiB",
            source="https://github.com/triton-inference-server/server/pull/8174, first tagged v2.59.0 (NGC 25.06); absent from 2.58.0 and the embedded 2.51.0",
        ),
    )
}


def supports(flag: str, triton_version: str) -> bool:
    """True when ``triton_version`` has ``--flag``. Raises KeyError for a flag not listed in :data:`FLAGS`."""
    return version(triton_version) >= version(FLAGS[flag].since)


@dataclass(frozen=True, kw_only=True)
class Crasher:
    """One request that stops the embedded 2.51 server, and the first release that survives it.

    Found by the fuzz tests (``tests/test_fuzz.py``) or published; the fix is read from the
    server / common repositories' history (the first tag containing the commit).
    """

    key: str
    summary: str
    fixed_in: str  # Triton version
    ngc: str  # the NGC container of that Triton version (server build.py of the tag)
    upstream: str

    @property
    def fixed(self) -> str:
        return f"Triton {self.fixed_in} (NGC {self.ngc})"


CRASHERS = {
    crasher.key: crasher
    for crasher in (
        Crasher(
            key="chunked-body",
            summary="an HTTP body of ~1M one-byte chunks overflows the frontend's stack (CVE-2025-23310/23311)",
            fixed_in="2.59.1",
            ngc="25.07",
            upstream="NVIDIA security bulletin https://nvidia.custhelp.com/app/answers/detail/a_id/5687",
        ),
        Crasher(
            key="class-count-bytes",
            summary="class_count (classification extension) on a BYTES output: SIGFPE",
            fixed_in="2.59.1",
            ngc="25.07",
            upstream="https://github.com/triton-inference-server/server/pull/8267 (on r25.07: https://github.com/triton-inference-server/server/pull/8309)",
        ),
        Crasher(
            key="overflowing-shape",
            summary="a numeric JSON input whose shape's element count overflows: std::length_error, SIGABRT",
            fixed_in="2.58.0",
            ngc="25.05",
            upstream="https://github.com/triton-inference-server/server/pull/8182 (element count checks); https://github.com/triton-inference-server/server/pull/8174 adds --http-max-input-size in 2.59.0",
        ),
        Crasher(
            key="nested-tensor-data",
            summary="tensor data nested ~40 000 deep: the frontend's recursive walk of `data` overflows the stack",
            fixed_in="2.58.0",
            ngc="25.05",
            upstream="https://github.com/triton-inference-server/server/pull/8172 (nesting depth limit 100 for tensor data)",
        ),
        Crasher(
            key="nested-json-body",
            summary="any JSON body nested deep enough: the recursive RapidJSON parse overflows the stack",
            fixed_in="2.69.0",
            ngc="26.05",
            upstream="https://github.com/triton-inference-server/common/pull/156 (RapidJSON iterative parsing)",
        ),
    )
}


def first_release_without_crashers() -> Crasher:
    """The crasher fixed last: a server older than its release can be stopped by one request."""
    return max(CRASHERS.values(), key=lambda c: version(c.fixed_in))


# Published vulnerabilities of the embedded 2.51 in code a remote client reaches.
EMBEDDED_VULNERABILITIES = (
    "CVE-2025-23310, CVE-2025-23311 (HTTP chunked request bodies)",
    "CVE-2025-23319, CVE-2025-23320, CVE-2025-23334 (Python backend shared memory)",
)


CRASHERS_BEGIN = "<!-- crasher table: generated from tritonize/triton_facts.py; do not edit -->"
CRASHERS_END = "<!-- end of crasher table -->"


def crashers_markdown() -> str:
    """The docs' table of the requests that stop the embedded 2.51 and the release that survives each."""
    lines = [CRASHERS_BEGIN, "| Request | First release that survives it | Upstream fix |", "|---|---|---|"]
    lines += [f"| {c.summary} | {c.fixed} | {c.upstream} |" for c in CRASHERS.values()]
    return "\n".join([*lines, CRASHERS_END]) + "\n"
