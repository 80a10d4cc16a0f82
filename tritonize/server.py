"""The embedded Triton server: the ``tritonserver`` binary bundled in the nvidia-pytriton wheel.

Why embedded: it is a real Triton (2.51, Python backend only) that runs without Docker or a
GPU, so the same repository, clients and load tests work on a laptop, in CI and against the
NGC container. Recipe: the Python-backend stub for this interpreter is placed in a backend
directory of our own (the wheel ships stubs per Python version), ``LD_LIBRARY_PATH`` gets the
wheel's bundled libs plus the interpreter's lib dir, and this interpreter's ``bin`` goes first
on ``PATH`` because the stub runs the first ``python3`` there (PYTHONPATH is ignored).

Secure by default: loopback bind, and every endpoint a client does not need for inference
(model repository, shared memory, statistics, trace, logging) restricted to clients that send
the admin header, on HTTP and gRPC. Bound to any other address, inference itself needs a second
key (the ``inference-key`` header): 2.51 can be stopped by single malformed inference requests,
and it checks the key before it reads the body (see :mod:`tritonize.triton_facts`). Model control mode is ``none`` unless a supervisor asks for
``explicit`` (it reloads models and drains deployments through the restricted repository API).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tritonize import triton_facts
from tritonize.errors import ServerError, ServerStartTimeout
from tritonize.server_args import MODEL_CONTROL_MODES, GrpcTls, Restriction, TritonServerOptions
from tritonize.triton_facts import CLIENT_APIS, GRPC_RESTRICTED_HEADER_PREFIX, RESTRICTED_APIS
from tritonize.urls import GRPC_PORT, HTTP_PORT, LOOPBACK, METRICS_PORT

log = logging.getLogger(__name__)

# Re-exported: GrpcTls and MODEL_CONTROL_MODES were defined here before server_args; CLIENT_APIS and
# RESTRICTED_APIS (tritonize's split of Triton's API groups) live in triton_facts.
__all__ = ["CLIENT_APIS", "GrpcTls", "MODEL_CONTROL_MODES", "RESTRICTED_APIS"]

# "inference" (a CLIENT_APIS group) goes behind its own key when the server is exposed.
INFERENCE_APIS = ("inference",)
ADMIN_HEADER = "admin-key"
INFERENCE_HEADER = "inference-key"
GRPC_ADMIN_HEADER = f"{GRPC_RESTRICTED_HEADER_PREFIX}{ADMIN_HEADER}"
GRPC_INFERENCE_HEADER = f"{GRPC_RESTRICTED_HEADER_PREFIX}{INFERENCE_HEADER}"
INFERENCE_KEY_ENV = "TRITONIZE_INFERENCE_KEY"  # where clients and commands read the inference key by default
# Triton's own default (``--exit-timeout-secs``): on SIGINT/SIGTERM, time for in-flight requests.
DEFAULT_EXIT_TIMEOUT_S = 30
VULNERABILITIES = triton_facts.EMBEDDED_VULNERABILITIES
FIXED_RELEASE = triton_facts.first_release_without_crashers().fixed


def _pytriton_root() -> Path:
    """The nvidia-pytriton package directory, found without importing it: only its bundled
    tritonserver is used, and importing pytriton pulls in its own client stack (zmq, sh, wrapt)."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise ServerError("nvidia-pytriton is not installed; `pip install nvidia-pytriton==0.7.0`")
    return Path(spec.origin).resolve().parent


def _site_packages() -> Path:
    return _pytriton_root().parent


def restricted_headers(protocol: str, header: str, key: str) -> dict[str, str]:
    """``{header: key}`` for HTTP, or the gRPC metadata Triton checks for that header (prefixed)."""
    return {f"{triton_facts.GRPC_RESTRICTED_HEADER_PREFIX}{header}" if protocol == "grpc" else header: key}


def tritonserver_binary() -> Path:
    """The bundled ``tritonserver`` (what ``tritonize serve`` runs, and Model Analyzer's local launch)."""
    return _pytriton_root() / "tritonserver" / "bin" / "tritonserver"


def admin_headers(protocol: str, admin_key: str) -> dict[str, str]:
    """The header (HTTP) or metadata (gRPC) that opens the restricted endpoints."""
    return restricted_headers(protocol, ADMIN_HEADER, admin_key)


def inference_headers(protocol: str, inference_key: str | None) -> dict[str, str] | None:
    """The header (HTTP) or metadata (gRPC) an inference request carries for a keyed server; None without a key."""
    return restricted_headers(protocol, INFERENCE_HEADER, inference_key) if inference_key else None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str) -> str | None:
    """The warning to print when the server binds an address other machines can reach, else None.

    Why: the bundled Triton 2.51 has published vulnerabilities in code a remote client reaches.
    """
    if is_loopback(host):
        return None
    return (
        f"WARNING: Triton binds {host}, reachable from other machines. The bundled tritonserver 2.51 has "
        f"published vulnerabilities: {'; '.join(VULNERABILITIES)}, and single requests that stop it "
        f"(fixed in {FIXED_RELEASE}); inference is behind the inference key unless --open-inference. "
        f"Serve untrusted networks with {FIXED_RELEASE} or later, or put a TLS-terminating proxy in front "
        "and bind 127.0.0.1."
    )


def _random_key() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the embedded server is started with; :mod:`tritonize.server_args` builds the argument list.

    ``restrict_inference`` None (the default) puts inference behind ``inference_key`` exactly when
    ``host`` is not loopback: the bundled 2.51 can be stopped by one malformed inference request,
    and it checks the key before it reads the request body (``triton_facts``).
    """

    repository: Path
    host: str = LOOPBACK
    http_port: int = HTTP_PORT
    grpc_port: int = GRPC_PORT
    metrics_port: int = METRICS_PORT
    admin_key: str = field(default_factory=_random_key)
    restrict_admin_apis: bool = True
    expose_statistics: bool = False
    inference_key: str = field(default_factory=_random_key)
    restrict_inference: bool | None = None
    model_control: str = "none"
    grpc_tls: GrpcTls | None = None
    exit_timeout_s: int = DEFAULT_EXIT_TIMEOUT_S
    start_timeout_s: float = 120.0
    log_file: Path | None = None
    log_verbose: int = 0
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model_control not in MODEL_CONTROL_MODES:
            raise ServerError(f"model control mode must be one of {MODEL_CONTROL_MODES}, got {self.model_control!r}")
        if self.exit_timeout_s < 0:
            raise ServerError(f"exit timeout must be >= 0 seconds, got {self.exit_timeout_s}")
        if self.inference_restricted and not self.inference_key:
            raise ServerError("inference behind a key needs a non-empty inference key")

    @property
    def restricted_apis(self) -> tuple[str, ...]:
        """The API groups behind the admin header (statistics open when ``expose_statistics``)."""
        if not self.restrict_admin_apis:
            return ()
        return tuple(api for api in RESTRICTED_APIS if not (self.expose_statistics and api == "statistics"))

    @property
    def inference_restricted(self) -> bool:
        """Whether inference requests need ``inference_key`` (default: when the host is not loopback)."""
        return not is_loopback(self.host) if self.restrict_inference is None else self.restrict_inference

    @property
    def client_inference_key(self) -> str | None:
        """The key a client of this server sends with inference requests (None: inference is open)."""
        return self.inference_key if self.inference_restricted else None

    def restrictions(self) -> tuple[Restriction, ...]:
        out = []
        if self.restricted_apis:
            out.append(Restriction(apis=self.restricted_apis, header=ADMIN_HEADER, key=self.admin_key))
        if self.inference_restricted:
            out.append(Restriction(apis=INFERENCE_APIS, header=INFERENCE_HEADER, key=self.inference_key))
        return tuple(out)

    def options(self, backend_dir: Path) -> TritonServerOptions:
        return TritonServerOptions(
            triton_version=triton_facts.EMBEDDED_TRITON_VERSION,
            repository=str(self.repository.resolve()),
            backend_directory=str(backend_dir),
            model_control=self.model_control,
            address=self.host,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            metrics_port=self.metrics_port,
            exit_timeout_s=self.exit_timeout_s,
            log_verbose=self.log_verbose,
            restrictions=self.restrictions(),
            grpc_tls=self.grpc_tls,
            extra_args=self.extra_args,
        )

    def args(self, binary: Path, backend_dir: Path) -> list[str]:
        return self.options(backend_dir).args(str(binary))


def prepare_backend_dir(cache_dir: Path) -> Path:
    """A backend directory holding the Python backend and the stub for this interpreter."""
    root = _pytriton_root() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(f"nvidia-pytriton ships no Python-backend stub for Python {version} ({stub})")
    target = cache_dir / f"backends-py{version}"
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for src in (*(root / "backends" / "python").glob("*.*"), stub):
        dst = python_dir / src.name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dst)
    return target


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    libs = [str(_site_packages() / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # the stub ignores it; keep the two processes consistent
    return env


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch_command(args: list[str]) -> list[str]:
    """``args`` behind ``setpriv --pdeathsig TERM`` where util-linux's setpriv exists.

    Why: the server must not outlive the process that started it (a killed test run, a killed
    ``tritonize serve``). The parent-death signal is set by setpriv, which then execs
    tritonserver (same pid), instead of by Python code run between fork and exec (``preexec_fn``),
    which is unsafe while other threads run: the watchdog restarts the server from its thread.
    The signal follows the *thread* that started the server, which lives until the server stops.
    Without setpriv the server starts unguarded (and a warning says so).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv (util-linux) not found: tritonserver will outlive this process if it is killed")
        return list(args)
    return [setpriv, "--pdeathsig", "TERM", "--", *args]


class EmbeddedServer:
    """Start, wait for readiness, stop. Use as a context manager.

    Raises ServerError when the binary is missing, a port is taken or the process dies,
    ServerStartTimeout when it is not ready in time; both carry the log's tail.
    """

    def __init__(self, config: ServerConfig, cache_dir: Path | None = None) -> None:
        from tritonize.cache import default_cache_dir

        self.config = config
        self.cache_dir = cache_dir or default_cache_dir()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config.log_file or (self.cache_dir / "logs" / f"tritonserver-{config.http_port}.log")

    @property
    def http_url(self) -> str:
        return f"{self._client_host}:{self.config.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host}:{self.config.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.config.metrics_port}/metrics"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        kept = [line for line in text if "NVML" not in line][-lines:]
        return "\n".join(kept)[-4000:] if kept else "(empty log)"

    def start(self) -> EmbeddedServer:
        cfg = self.config
        if not (cfg.repository / "").is_dir():
            raise ServerError(f"model repository {cfg.repository} does not exist; run `tritonize build` first")
        for port in (cfg.http_port, cfg.grpc_port, cfg.metrics_port):
            if not port_is_free(cfg.host, port):
                raise ServerError(f"port {port} on {cfg.host} is already in use")
        args = cfg.args(tritonserver_binary(), prepare_backend_dir(self.cache_dir))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s", " ".join(args))
        with open(self.log_path, "wb") as log_file:
            # Its own session: a terminal's Ctrl-C reaches this process, which drains and stops the
            # server, instead of reaching tritonserver directly in the middle of that.
            self.process = subprocess.Popen(
                launch_command(args), stdout=log_file, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(
                    f"tritonserver exited with code {self.process.returncode} while starting; log {self.log_path}:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerStartTimeout(
            f"tritonserver not ready after {self.config.start_timeout_s:.0f}s; log {self.log_path}:\n" + self.log_tail()
        )

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGINT, wait (default: the exit timeout plus 5 s), then SIGKILL. Returns the exit code.

        A tritonserver that crashed or was killed leaves its Python-backend stubs running and
        their shared-memory regions in /dev/shm (Triton 2.51); both are cleaned up here.
        """
        proc, self.process = self.process, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=self.config.exit_timeout_s + 5.0 if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver (pid %d) did not exit in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self._clean_up_after(proc.pid)
        return proc.returncode

    @staticmethod
    def _clean_up_after(pid: int) -> None:
        from tritonize.serving.processes import cleanup_after_server

        killed, removed = cleanup_after_server(pid, set())
        if killed or removed:
            log.warning("tritonserver pid %d left %d stub(s) and %d shm region(s): removed", pid, killed, removed)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
