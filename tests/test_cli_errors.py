"""User-input mistakes on the CLI end with a short message and an exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tritonize.server import free_port


def _tritonize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tritonize.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _assert_short_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tritonize") and "error:" in last, result.stderr
    for needle in needles:
        assert needle in last, (needle, last)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["classify", "x", "--top-k", "0"], ["--top-k", "must be >= 1"]),
        (["classify", "x", "--top-k", "three"], ["--top-k", "'three'"]),
        (["classify", "x", "--timeout", "-1"], ["--timeout", "must be > 0"]),
        (["classify", "x", "--protocol", "smtp"], ["--protocol", "smtp"]),
        (["generate", "x", "--max-new-tokens", "0"], ["--max-new-tokens", "must be >= 1"]),
        (["generate", "x", "--max-new-tokens", "-3"], ["--max-new-tokens"]),
    ],
)
def test_cli_exits_2_with_one_line_when_argument_is_bad(args: list[str], needles: list[str]) -> None:
    _assert_short_error(_tritonize(*args), 2, *needles)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_cli_exits_1_with_one_line_when_server_refuses(triton_server, protocol: str) -> None:
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    common = ["--protocol", protocol, "--url", url]
    _assert_short_error(_tritonize("classify", "x", "--model", "no_such_model", *common), 1, "no_such_model", url)
    if (triton_server.repository / "t5_small_emotion").is_dir():
        result = _tritonize("generate", "x", "--model", "t5_small_emotion", "--max-new-tokens", "100000", *common)
        _assert_short_error(result, 1, "max_new_tokens must be in 1..")
    _assert_short_error(_tritonize("classify", "   ", *common), 1, "empty")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_cli_exits_1_naming_url_when_nothing_listens(protocol: str) -> None:
    url = f"127.0.0.1:{free_port()}"
    _assert_short_error(_tritonize("classify", "x", "--protocol", protocol, "--url", url, "--timeout", "5"), 1, url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "127.0.0.1:99999", "localhost"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_cli_exits_1_with_one_line_when_url_is_malformed(url: str, protocol: str) -> None:
    result = _tritonize("classify", "x", "--protocol", protocol, "--url", url, "--timeout", "5")
    _assert_short_error(result, 1, "host:port")
    assert len(result.stderr.strip().splitlines()) == 1  # nothing printed at exit either
