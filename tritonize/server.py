"""The embedded Triton server: the ``tritonserver`` binary bundled in the nvidia-pytriton wheel.

Why embedded: it is a real Triton (2.51, Python backend only) that runs without Docker or a
GPU, so the same repository, clients and load tests work on a laptop, in CI and against the
NGC container. Recipe: the Python-backend stub for this interpreter is placed in a backend
directory of our own (the wheel ships stubs per Python version), ``LD_LIBRARY_PATH`` gets the
wheel's bundled libs plus the interpreter's lib dir, and this interpreter's ``bin`` goes first
on ``PATH`` because the stub runs the first ``python3`` there (PYTHONPATH is ignored).

Secure by default: loopback bind, model control mode ``none``, and the model-repository and
shared-memory endpoints restricted to clients that send the admin header.
"""

from __future__ import annotations

import ctypes
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

log = logging.getLogger(__name__)

RESTRICTED_APIS = ("model-repository", "shared-memory")
ADMIN_HEADER = "admin-key"


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


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the server is started with; the argument list is built from it, never split."""

    repository: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    restrict_admin_apis: bool = True
    exit_timeout_s: int = 2
    start_timeout_s: float = 120.0
    log_file: Path | None = None
    log_verbose: int = 0
    extra_args: tuple[str, ...] = ()

    def args(self, binary: Path, backend_dir: Path) -> list[str]:
        args = [
            str(binary),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={backend_dir}",
            "--model-control-mode=none",
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
        if self.restrict_admin_apis:
            restriction = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={self.admin_key}"
            args += [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]
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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


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
        return "\n".join(line for line in text if "NVML" not in line)[-4000:] if text else "(empty log)"

    def start(self) -> EmbeddedServer:
        cfg = self.config
        if not (cfg.repository / "").is_dir():
            raise ServerError(f"model repository {cfg.repository} does not exist; run `tritonize build` first")
        for port in (cfg.http_port, cfg.grpc_port, cfg.metrics_port):
            if not port_is_free(cfg.host if cfg.host != "0.0.0.0" else "0.0.0.0", port):
                raise ServerError(f"port {port} on {cfg.host} is already in use")
        binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
        args = cfg.args(binary, prepare_backend_dir(self.cache_dir))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s", " ".join(args))
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                args, stdout=log_file, stderr=subprocess.STDOUT, env=server_env(), preexec_fn=_die_with_parent
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

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGINT, wait, then SIGKILL. Returns the exit code."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
