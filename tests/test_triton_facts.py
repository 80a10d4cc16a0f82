"""Each fact of :mod:`tritonize.triton_facts`, pinned against the real embedded Triton (2.51).

These facts are message texts and command lines, not documented API: an upgrade of the bundled
server may change any of them. Each test here fails then, naming the fact, instead of the
watchdog, the client's error mapping or the endpoint pool quietly deciding wrong. (The scheduler
refusal texts are pinned by ``tests/test_overload.py``, which provokes them.)
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import loopback_config

from tritonize import triton_facts as facts
from tritonize.server import EmbeddedServer, admin_headers, free_port
from tritonize.urls import http_base

pytestmark = pytest.mark.triton
MODEL = "distilbert_emotion"


def _stubs_of(server_pid: int) -> list[facts.StubCommand]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            command = facts.parse_stub_command(argv)
            if command is not None and command.server_pid == server_pid:
                found.append(command)
    return found


def test_embedded_server_reports_the_triton_version_the_facts_were_observed_in(triton_server):
    with urllib.request.urlopen(http_base(triton_server.http_url) + "/v2", timeout=10) as response:
        assert json.loads(response.read())["version"] == facts.EMBEDDED_TRITON_VERSION


def test_stub_command_line_names_its_server_model_instance_and_shm_region_when_served(triton_server):
    stubs = _stubs_of(triton_server.server.pid)
    assert stubs, "no Python-backend stub found for the session server: the command-line layout changed"
    for stub in stubs:
        assert (triton_server.repository / stub.model / "config.pbtxt").is_file(), stub
        assert stub.instance.startswith(f"{stub.model}_"), stub
        assert stub.shm_region.startswith(facts.SHM_REGION_PREFIX) and Path("/dev/shm", stub.shm_region).exists(), stub


def test_restricted_call_is_403_over_http_and_unavailable_naming_the_restriction_over_grpc(triton_server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    request = urllib.request.Request(http_base(triton_server.http_url) + "/v2/models/stats")
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request, timeout=10)
    assert http_error.value.code == 403
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as grpc_error:
            client.get_inference_statistics()
        assert str(grpc_error.value.status()) == "StatusCode.UNAVAILABLE"
        assert facts.RESTRICTED_MESSAGE in grpc_error.value.message()
        keyed = client.get_inference_statistics(headers=admin_headers("grpc", triton_server.admin_key), as_json=True)
        assert "model_stats" in keyed
    finally:
        client.close()


def test_grpc_call_to_a_closed_port_is_recognised_as_never_connected():
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(InferenceServerException) as info:
            client.is_server_live(client_timeout=5)
    finally:
        client.close()
    assert facts.grpc_never_connected(str(info.value.status()), info.value.message()), info.value


def test_inference_error_names_the_instance_whose_stub_died(single_instance_repository, tritonize_cache):
    """One instance, so Triton cannot route around the dead stub; the error names it."""
    with EmbeddedServer(loopback_config(single_instance_repository), cache_dir=tritonize_cache) as server:
        stub = next(s for s in _stubs_of(server.pid) if s.model == f"{MODEL}_model")
        pid = next(
            int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and stub.shm_region.encode() in (e / "cmdline").read_bytes()
        )  # fmt: skip
        os.kill(pid, signal.SIGKILL)
        body = {"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["i feel fine"]}]}
        request = urllib.request.Request(
            http_base(server.http_url) + f"/v2/models/{MODEL}/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        message = json.loads(info.value.read()).get("error", "")
    assert facts.unhealthy_instance(message) == stub.instance, message


def test_parse_stub_command_ignores_other_processes():
    assert facts.parse_stub_command(["/usr/bin/python3", "x.py"]) is None
    argv = [f"/x/{facts.STUB_BINARY}", "/r/m/1/model.py", "region", "1", "2", "not-a-pid", "lib", "h", "m_0_0", "rt"]
    assert facts.parse_stub_command(argv) is None
