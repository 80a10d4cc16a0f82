"""The wheel, installed as a user installs it, in a fresh virtual environment outside the checkout.

Builds tritonize's wheel from a clean copy of the package, installs it into a new venv in a
temporary folder and runs the commands from there: first without extras (a build ends with one
line naming ``[export]``), then with ``[export,loadtest]`` (build, serve, classify, generate,
loadtest, evaluate). Nothing of the checkout is on the path: package data, the locustfiles
and the spec come from the installed package.

Dependencies are installed from a local wheelhouse (``$TRITONIZE_WHEELHOUSE``, default
``~/.cache/tritonize/wheelhouse``), filled with ``pip download`` the first time a requirement is
missing from it: the registry's files are not cached by pip here, and a fresh venv would download
its several hundred MB again on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from conftest import loopback_config

from tritonize.corpus import EMOTION_LABELS
from tritonize.demo.sentences import SENTENCES

pytestmark = [pytest.mark.long, pytest.mark.slow, pytest.mark.triton]

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE_ENV = "TRITONIZE_WHEELHOUSE"
TORCH = "torch==2.13.0"  # pinned first: a bare torch requirement would resolve to a CUDA build
EXTRAS = "export,loadtest"  # what a user who builds and load-tests names
MODELS = ("distilbert_emotion", "t5_small_emotion")  # a classifier and a generator keep the build short
SERVE_READY_S = 300


def _wheelhouse() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tritonize" / "wheelhouse"
    path = Path(os.environ.get(WHEELHOUSE_ENV) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _user_env(tmp: Path) -> dict[str, str]:
    """A user's environment: no virtualenv or path of the test run, a fresh tritonize cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TRITONIZE_TEST_CACHE")}
    env["TRITONIZE_CACHE"] = str(tmp / "cache")
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a clean copy (no build leftovers of the checkout can slip in)."""
    source = tmp / "source"
    shutil.copytree(ROOT / "tritonize", source / "tritonize", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    isolation = []
    with contextlib.suppress(metadata.PackageNotFoundError, ValueError):
        if int(metadata.version("setuptools").split(".")[0]) >= 77:  # pyproject's build requirement
            isolation = ["--no-build-isolation"]  # build with this venv's setuptools, no download
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(tmp / "dist"), str(source)]
    _ok(_run(command, tmp, os.environ.copy()))
    (wheel,) = (tmp / "dist").glob("tritonize-*.whl")
    return wheel


def _pip_install(python: Path, requirements: list[str], tmp: Path, env: dict[str, str]) -> None:
    """Install from the wheelhouse alone; fill it with ``pip download`` when something is missing."""
    house = str(_wheelhouse())
    install = [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", house, *requirements]
    if _run(install, tmp, env).returncode != 0:
        _ok(_run([str(python), "-m", "pip", "download", "-q", "-d", house, *requirements], tmp, env, timeout=1800))
        _ok(_run(install, tmp, env))


def _last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


@contextlib.contextmanager
def _serving(bin_dir: Path, repository: Path, user: Path, env: dict[str, str], admin_key: str):
    """``tritonize serve`` on free loopback ports until it prints that Triton is ready; SIGTERM after."""
    ports = loopback_config(repository)  # free ports only
    command = [
        str(bin_dir / "tritonize"), "serve", "--repository", str(repository), "--admin-key", admin_key,
        "--http-port", str(ports.http_port), "--grpc-port", str(ports.grpc_port), "--metrics-port", str(ports.metrics_port),
    ]  # fmt: skip
    log = (user / "serve.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(command, cwd=user, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + SERVE_READY_S
        while "Triton ready" not in (user / "serve.log").read_text(encoding="utf-8"):
            assert process.poll() is None, (user / "serve.log").read_text(encoding="utf-8")[-3000:]
            assert time.monotonic() < deadline, "tritonize serve did not get ready"
            time.sleep(1)
        yield ports
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            log.close()
        assert code == 0, (user / "serve.log").read_text(encoding="utf-8")[-3000:]


def test_wheel_installed_in_a_fresh_venv_runs_every_command_outside_the_checkout(tmp_path: Path) -> None:
    started = time.monotonic()
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(venv)], tmp_path, os.environ.copy()))
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    user = tmp_path / "user"  # the working directory: neither the checkout nor the venv
    user.mkdir()
    env = _user_env(tmp_path)
    tritonize = [str(bin_dir / "tritonize")]

    # 1. The base install serves and queries; commands that need an extra name it in one line.
    _pip_install(python, [str(wheel)], tmp_path, env)
    where = _ok(_run([str(python), "-c", "import tritonize; print(tritonize.__file__)"], user, env))
    assert Path(where.strip()).is_relative_to(venv), where
    assert _last_line(_run([*tritonize, "build", "--demo", "tiny", "--out", "repo"], user, env)) == (
        "tritonize: error: `tritonize build` needs transformers, which is not installed: pip install 'tritonize[export]'"
    )
    loadtest = [*tritonize, "loadtest", "--url", "127.0.0.1:9", "--run-time", "1s", "--out", "lt"]
    assert _last_line(_run(loadtest, user, env)).endswith("pip install 'tritonize[loadtest]'")
    base_s = time.monotonic() - started

    # 2. With the extras a user names for building and load testing.
    _pip_install(python, [TORCH, f"{wheel}[{EXTRAS}]"], tmp_path, env)
    installed_s = time.monotonic() - started
    build = [*tritonize, "build", "--demo", "tiny", "--out", "repo"] + [f"--model={m}" for m in MODELS]
    _ok(_run(build, user, env))
    built_s = time.monotonic() - started
    happy = SENTENCES[0]
    dataset = user / "labelled.txt"
    dataset.write_text("".join(f"{s.text};{s.expected(EMOTION_LABELS)}\n" for s in SENTENCES), encoding="utf-8")
    with _serving(bin_dir, user / "repo", user, env, admin_key="wheel-test") as ports:
        grpc = f"127.0.0.1:{ports.grpc_port}"
        classified = json.loads(_ok(_run([*tritonize, "classify", "--url", grpc, happy.text], user, env)))
        assert classified[0]["label"] == happy.expected(EMOTION_LABELS)
        generate = [*tritonize, "generate", "--model", MODELS[1], "--url", grpc, happy.text]
        assert json.loads(_ok(_run(generate, user, env)))[0]["generated_text"] in EMOTION_LABELS
        loadtest = [
            *tritonize, "loadtest", "--url", grpc, "--metrics-url", f"127.0.0.1:{ports.metrics_port}",
            "--admin-key", "wheel-test", "--users", "2", "--spawn-rate", "2", "--run-time", "3s", "--out", "lt",
        ]  # fmt: skip
        _ok(_run(loadtest, user, env))
        summary = json.loads((user / "lt" / "summary.json").read_text(encoding="utf-8"))
        assert summary["client"]["requests"] > 0 and summary["client"]["failures"] == 0
        evaluate = [*tritonize, "evaluate", "--model", MODELS[0], "--dataset", str(dataset), "--url", grpc, "--out", "ev"]
        _ok(_run(evaluate, user, env))
        report = json.loads((user / "ev" / "evaluation.json").read_text(encoding="utf-8"))
        assert report["examples"] == len(SENTENCES) and (user / "ev" / "evaluation.md").is_file()
        assert report["deployments"][0]["heads"]["label"]["accuracy"] == 1.0  # the demo sentences, right
    served_s = time.monotonic() - started
    print(
        f"installed-wheel timings: wheel + base install {base_s:.0f} s, extras {installed_s - base_s:.0f} s, "
        f"build {built_s - installed_s:.0f} s, serve + commands {served_s - built_s:.0f} s, total {served_s:.0f} s"
    )
