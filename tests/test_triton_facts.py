"""Each fact of :mod:`tritonize.triton_facts`, pinned against the real embedded Triton (2.51), and the
one tritonserver argument builder that checks flags against those facts.

These facts are message texts and command lines, not documented API: an upgrade of the bundled
server may change any of them. Each test here fails then, naming the fact, instead of the
watchdog, the client's error mapping or the endpoint pool quietly deciding wrong. (The scheduler
refusal texts are pinned by ``tests/test_overload.py``, which provokes them.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import loopback_config

from tritonize import triton_facts
from tritonize import triton_facts as facts
from tritonize.errors import TritonArgsError
from tritonize.server import EmbeddedServer, admin_headers, free_port
from tritonize.server_args import Restriction, TritonServerOptions
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


# -- version facts: flags per version, the API groups 2.51 lists, the crashers and their fixes ----------
@pytest.fixture(scope="module")
def embedded_help() -> str:
    pytest.importorskip("pytriton")
    from tritonize.server import _pytriton_root, server_env

    binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, env=server_env(), timeout=60)
    return result.stdout + result.stderr


def test_embedded_help_lists_exactly_the_api_groups_tritonize_knows(embedded_help):
    listed = re.search(r"Allowed APIs: ([a-z\-,\s]+?)\n\n", embedded_help)
    assert listed, embedded_help[:2000]
    assert tuple(a.strip() for a in listed.group(1).split(",")) == triton_facts.API_GROUPS


@pytest.mark.parametrize("flag", sorted(triton_facts.FLAGS))
def test_embedded_help_has_a_flag_exactly_when_facts_say_its_version_has_it(embedded_help, flag):
    assert (f"--{flag} " in embedded_help) is triton_facts.supports(flag, triton_facts.EMBEDDED_TRITON_VERSION)


def test_each_crasher_is_fixed_in_a_release_and_the_newest_fix_is_the_json_parser():
    assert {c.key for c in triton_facts.CRASHERS.values()} == set(triton_facts.CRASHERS)
    assert triton_facts.first_release_without_crashers().key == "nested-json-body"
    for crasher in triton_facts.CRASHERS.values():
        assert triton_facts.version(crasher.fixed_in) > triton_facts.version(triton_facts.EMBEDDED_TRITON_VERSION)


def _options(version: str, **kwargs) -> TritonServerOptions:
    return TritonServerOptions(triton_version=version, repository="/m", http_port=1, grpc_port=2, metrics_port=3, **kwargs)


def test_builder_refuses_a_flag_the_target_triton_lacks_and_sets_it_where_it_exists():
    since = triton_facts.FLAGS["http-max-input-size"].since
    with pytest.raises(TritonArgsError, match=f"needs Triton {since}.*Triton {triton_facts.EMBEDDED_TRITON_VERSION}"):
        _options(triton_facts.EMBEDDED_TRITON_VERSION, http_max_input_bytes=1 << 20)
    assert "--http-max-input-size=1048576" in _options(since, http_max_input_bytes=1 << 20).args()


def test_builder_sets_one_cuda_pool_per_gpu_and_one_header_per_api_group():
    args = _options("2.71.0", cuda_memory_pool_bytes=256 << 20, gpus=2).args()
    assert [a for a in args if "cuda-memory-pool" in a] == [
        f"--cuda-memory-pool-byte-size=0:{256 << 20}",
        f"--cuda-memory-pool-byte-size=1:{256 << 20}",
    ]
    with pytest.raises(TritonArgsError, match="gpus >= 1"):
        _options("2.71.0", cuda_memory_pool_bytes=256 << 20)
    twice = (Restriction(apis=("inference",), header="a", key="k"), Restriction(apis=("inference", "trace"), header="b", key="k"))
    with pytest.raises(TritonArgsError, match="restricted twice"):
        _options("2.71.0", restrictions=twice)
    with pytest.raises(TritonArgsError, match="must be among"):
        Restriction(apis=("inferance",), header="a", key="k")


def test_docs_security_crasher_table_equals_generation_when_facts_unchanged():
    from pathlib import Path

    from tritonize.deploy.release import marked_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    block = marked_table(page, triton_facts.CRASHERS_BEGIN, triton_facts.CRASHERS_END)
    assert block == triton_facts.crashers_markdown(), "run scripts/generate-deploy.sh"
