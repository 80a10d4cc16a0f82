"""The ``tritonserver`` argument list: one builder for the embedded server, compose and Kubernetes.

Why one builder: a flag the servers should carry (an API restriction, the HTTP input limit, the
CUDA memory pool) is added here once and reaches every deployment; the embedded server
(:class:`tritonize.server.ServerConfig`) and the container command
(:mod:`tritonize.deploy.server_command`) only fill in :class:`TritonServerOptions`. Typed
options in, a list of arguments out, never a split string. Each option is checked against the
Triton version that will run it (:mod:`tritonize.triton_facts`), so asking the embedded 2.51 for
a flag it lacks fails here, with the version named, instead of at server start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritonize import triton_facts
from tritonize.errors import TritonArgsError

MODEL_CONTROL_MODES = ("none", "explicit")


@dataclass(frozen=True, kw_only=True)
class Restriction:
    """API groups answered only to requests that carry ``header: key`` (gRPC: prefixed metadata).

    ``key`` may be a variable reference (``${TRITON_ADMIN_KEY}``, ``$(TRITON_ADMIN_KEY)``) that compose
    or the kubelet expands, so the secret never appears in a generated file.
    """

    apis: tuple[str, ...]
    header: str
    key: str

    def __post_init__(self) -> None:
        unknown = sorted(set(self.apis) - set(triton_facts.API_GROUPS))
        if not self.apis or unknown:
            raise TritonArgsError(f"restricted API groups must be among {list(triton_facts.API_GROUPS)}, got {list(self.apis)}")
        if not self.key or not self.header or any(c in self.header for c in ":=, "):
            raise TritonArgsError(f"a restriction needs a key and a header name without ':', '=', ',' or spaces, got {self.header!r}")

    @property
    def value(self) -> str:
        """``<api>,<api>:<header>=<key>``: the value of ``--http-restricted-api`` / ``--grpc-restricted-protocol``."""
        return f"{','.join(self.apis)}:{self.header}={self.key}"


@dataclass(frozen=True, kw_only=True)
class GrpcTls:
    """gRPC over TLS (Triton's ``--grpc-use-ssl`` flags); HTTP is unaffected.

    ``mutual`` makes clients present a certificate signed by ``root_cert``. Raises TritonArgsError
    when a file is missing or mutual TLS has no root certificate.
    """

    cert: Path
    key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def __post_init__(self) -> None:
        if self.mutual and self.root_cert is None:
            raise TritonArgsError("mutual TLS needs a root certificate (--grpc-root-cert) to check client certificates")
        for label, path in (("server certificate", self.cert), ("server key", self.key), ("root certificate", self.root_cert)):
            if path is not None and not Path(path).is_file():
                raise TritonArgsError(f"gRPC TLS {label} {path} is not a file")

    def args(self) -> list[str]:
        args = ["--grpc-use-ssl=true", f"--grpc-server-cert={Path(self.cert).resolve()}", f"--grpc-server-key={Path(self.key).resolve()}"]
        if self.root_cert is not None:
            args.append(f"--grpc-root-cert={Path(self.root_cert).resolve()}")
        if self.mutual:
            args.append("--grpc-use-ssl-mutual=true")
        return args


@dataclass(frozen=True, kw_only=True)
class TritonServerOptions:
    """Everything a tritonserver process is started with, for one Triton version.

    ``address`` None leaves Triton's default (every interface: the container case, where the port
    binding or NetworkPolicy decides exposure). ``cuda_memory_pool_bytes`` applies to each of the
    ``gpus`` devices the process sees (0..gpus-1).
    """

    triton_version: str
    repository: str
    http_port: int
    grpc_port: int
    metrics_port: int
    address: str | None = None
    backend_directory: str | None = None
    model_control: str = "none"
    exit_timeout_s: int | None = None
    log_verbose: int | None = None
    restrictions: tuple[Restriction, ...] = ()
    http_max_input_bytes: int | None = None
    cuda_memory_pool_bytes: int | None = None
    gpus: int = 0
    grpc_tls: GrpcTls | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model_control not in MODEL_CONTROL_MODES:
            raise TritonArgsError(f"model control mode must be one of {MODEL_CONTROL_MODES}, got {self.model_control!r}")
        groups = [api for restriction in self.restrictions for api in restriction.apis]
        twice = sorted({api for api in groups if groups.count(api) > 1})
        if twice:  # Triton takes one header per group
            raise TritonArgsError(f"API groups {twice} are restricted twice; each group takes one header")
        for flag, value in (("http-max-input-size", self.http_max_input_bytes), ("cuda-memory-pool-byte-size", self.cuda_memory_pool_bytes)):
            if value is None:
                continue
            if value <= 0:
                raise TritonArgsError(f"--{flag} must be > 0 bytes, got {value}")
            if not triton_facts.supports(flag, self.triton_version):
                since = triton_facts.FLAGS[flag].since
                raise TritonArgsError(f"--{flag} needs Triton {since} or later; this server is Triton {self.triton_version}")
        if self.cuda_memory_pool_bytes is not None and self.gpus < 1:
            raise TritonArgsError("a CUDA memory pool needs gpus >= 1")

    def args(self, binary: str = "tritonserver") -> list[str]:
        control = ["--model-control-mode=explicit", "--load-model=*"] if self.model_control == "explicit" else ["--model-control-mode=none"]
        args = [binary, f"--model-repository={self.repository}"]
        if self.backend_directory is not None:
            args.append(f"--backend-directory={self.backend_directory}")
        args += control
        for protocol, port in (("http", self.http_port), ("grpc", self.grpc_port), ("metrics", self.metrics_port)):
            if self.address is not None:
                args.append(f"--{protocol}-address={self.address}")
            args.append(f"--{protocol}-port={port}")
        if self.exit_timeout_s is not None:
            args.append(f"--exit-timeout-secs={self.exit_timeout_s}")
        if self.log_verbose is not None:
            args.append(f"--log-verbose={self.log_verbose}")
        args.append("--strict-readiness=true")
        for restriction in self.restrictions:
            args += [f"--http-restricted-api={restriction.value}", f"--grpc-restricted-protocol={restriction.value}"]
        if self.http_max_input_bytes is not None:
            args.append(f"--http-max-input-size={self.http_max_input_bytes}")
        if self.cuda_memory_pool_bytes is not None:
            args += [f"--cuda-memory-pool-byte-size={gpu}:{self.cuda_memory_pool_bytes}" for gpu in range(self.gpus)]
        if self.grpc_tls is not None:
            args += self.grpc_tls.args()
        return args + list(self.extra_args)
