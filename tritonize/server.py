"""The embedded Triton server: the ``tritonserver`` binary bundled in the nvidia-pytriton wheel.

Why embedded: it is a real Triton (2.51, Python backend only) that runs without Docker or a
GPU, so the same repository, clients and load tests work on a laptop, in CI and against the
NGC container. Recipe: the Python-backend stub for this interpreter is placed in a backend
directory of our own (the wheel ships stubs per Python version), ``LD_LIBRARY_PATH`` gets the
wheel's bundled libs plus the interpreter's lib dir, and this interpreter's ``bin`` goes first
on ``PATH`` because the stub runs the first ``python3`` there (PYTHONPATH is ignored).

Secure by default: loopback bind, and every endpoint a client does not need for inference
(model repository, shared memory, statistics, trace, logging) restricted to clients that send
the admin header, on HTTP and gRPC. Model control mode is ``none`` unless a supervisor asks for
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

from tritonize.errors import ServerError, ServerStartTimeout
from tritonize.triton_facts import GRPC_RESTRICTED_HEADER_PREFIX, RESTRICTED_APIS
from tritonize.urls import GRPC_PORT, HTTP_PORT, LOOPBACK, METRICS_PORT

log = logging.getLogger(__name__)

ADMIN_HEADER = "admin-key"
GRPC_ADMIN_HEADER = f"{GRPC_RESTRICTED_HEADER_PREFIX}{ADMIN_HEADER}"
# Triton's own default (``--exit-timeout-secs``): on SIGINT/SIGTERM, time for in-flight requests.
DEFAULT_EXIT_TIMEOUT_S = 30
MODEL_CONTROL_MODES = ("none", "explicit")
VULNERABILITIES = (
    "CVE-2025-23310, CVE-2025-23311 (HTTP chunked request bodies)",
    "CVE-2025-23319, CVE-2025-23320, CVE-2025-23334 (Python backend shared memory)",
)
FIXED_RELEASE = "NGC 25.07 (Triton 2.59.1)"


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


def admin_headers(protocol: str, admin_key: str) -> dict[str, str]:
    """The header (HTTP) or metadata (gRPC) that opens the restricted endpoints."""
    return {GRPC_ADMIN_HEADER if protocol == "grpc" else ADMIN_HEADER: admin_key}


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
        f"published vulnerabilities: {'; '.join(VULNERABILITIES)}. Serve untrusted networks with "
        f"{FIXED_RELEASE} or later, or put a TLS-terminating proxy in front and bind 127.0.0.1."
    )


@dataclass(frozen=True, kw_only=True)
class GrpcTls:
    """gRPC over TLS (Triton's ``--grpc-use-ssl`` flags); HTTP is unaffected.

    ``mutual`` makes clients present a certificate signed by ``root_cert``. Raises ServerError
    when a file is missing or mutual TLS has no root certificate.
    """

    cert: Path
    key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def __post_init__(self) -> None:
        if self.mutual and self.root_cert is None:
            raise ServerError("mutual TLS needs a root certificate (--grpc-root-cert) to check client certificates")
        for label, path in (("server certificate", self.cert), ("server key", self.key), ("root certificate", self.root_cert)):
            if path is not None and not Path(path).is_file():
                raise ServerError(f"gRPC TLS {label} {path} is not a file")

    def args(self) -> list[str]:
        args = ["--grpc-use-ssl=true", f"--grpc-server-cert={Path(self.cert).resolve()}", f"--grpc-server-key={Path(self.key).resolve()}"]
        if self.root_cert is not None:
            args.append(f"--grpc-root-cert={Path(self.root_cert).resolve()}")
        if self.mutual:
            args.append("--grpc-use-ssl-mutual=true")
        return args


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the server is started with; the argument list is built from it, never split."""

    repository: Path
    host: str = LOOPBACK
    http_port: int = HTTP_PORT
    grpc_port: int = GRPC_PORT
    metrics_port: int = METRICS_PORT
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    restrict_admin_apis: bool = True
    expose_statistics: bool = False
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

    @property
    def restricted_apis(self) -> tuple[str, ...]:
        """The API groups behind the admin header (statistics open when ``expose_statistics``)."""
        if not self.restrict_admin_apis:
            return ()
        return tuple(api for api in RESTRICTED_APIS if not (self.expose_statistics and api == "statistics"))

    def args(self, binary: Path, backend_dir: Path) -> list[str]:
        control = ["--model-control-mode=explicit", "--load-model=*"] if self.model_control == "explicit" else []
        args = [
            str(binary),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={backend_dir}",
            *(control or ["--model-control-mode=none"]),
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            "--strict-readiness=true",
        ]
        if self.restricted_apis:
            restriction = f"{','.join(self.restricted_apis)}:{ADMIN_HEADER}={self.admin_key}"
            args += [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]
        if self.grpc_tls is not None:
            args += self.grpc_tls.args()
        return args + list(self.extra_args)


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
        binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
        args = cfg.args(binary, prepare_backend_dir(self.cache_dir))
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
