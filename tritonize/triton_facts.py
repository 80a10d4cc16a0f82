"""What tritonize relies on in Triton Inference Server, each fact with the version it was observed in.

Why one module: Triton's command-line flags, API group names and header conventions change between
releases, and tritonize runs two of them (the embedded 2.51 server and the pinned NGC release).
Code that depends on such a fact imports it from here; ``tests/test_triton_facts.py`` pins each
fact against the real embedded server (or its ``--help``), so an upgrade breaks one test, not a
behaviour. Sources for the NGC side: the tags of ``triton-inference-server/server`` and
``triton-inference-server/common`` named next to each fact.
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonize.tensorrt_facts import version_parts

# nvidia-pytriton 0.7.0 bundles tritonserver 2.51.0 (Python backend only); its /v2 metadata says so.
EMBEDDED_TRITON_VERSION = "2.51.0"

# Every API group `--http-restricted-api` / `--grpc-restricted-protocol` accept, in Triton's order
# (server src/restricted_features.h RESTRICTED_CATEGORY_NAMES: the same nine in 2.51.0 and 2.71.0).
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

# gRPC metadata key of a restricted group = this prefix + the configured header
# (server src/grpc/grpc_server.h kRestrictedProtocolHeaderTemplate, 2.51.0 and 2.71.0).
GRPC_RESTRICTED_HEADER_PREFIX = "triton-grpc-protocol-"

# In 2.51.0 (and 2.71.0) HTTPAPIServer::HandleInfer checks the "inference" restriction first,
# before the body is decompressed, gathered or parsed (server src/http_server.cc): a request
# without the header never reaches the JSON parser or the tensor readers.
RESTRICTION_CHECKED_BEFORE_BODY = "2.51.0"


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
    return version_parts(triton_version) >= version_parts(FLAGS[flag].since)


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
    return max(CRASHERS.values(), key=lambda c: version_parts(c.fixed_in))


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
