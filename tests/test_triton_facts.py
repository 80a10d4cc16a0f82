"""tritonize/triton_facts.py pinned against the embedded Triton itself, and the one argument builder.

A fact observed in 2.51 is checked against the bundled binary (its ``--help`` and its /v2
metadata), so upgrading the embedded server breaks this test instead of a behaviour. The gRPC
header prefix and the restriction-before-body fact are exercised on a real server in
``test_server_surface.py`` and ``test_inference_key.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from tritonize import triton_facts
from tritonize.errors import TritonArgsError
from tritonize.server_args import Restriction, TritonServerOptions


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


@pytest.mark.triton
def test_embedded_server_reports_the_version_the_facts_name(triton_server):
    with urllib.request.urlopen(f"http://{triton_server.http_url}/v2", timeout=10) as response:  # noqa: S310 - test server
        assert json.loads(response.read())["version"] == triton_facts.EMBEDDED_TRITON_VERSION


def test_each_crasher_is_fixed_in_a_release_and_the_newest_fix_is_the_json_parser():
    assert {c.key for c in triton_facts.CRASHERS.values()} == set(triton_facts.CRASHERS)
    assert triton_facts.first_release_without_crashers().key == "nested-json-body"
    for crasher in triton_facts.CRASHERS.values():
        assert triton_facts.version_parts(crasher.fixed_in) > triton_facts.version_parts(triton_facts.EMBEDDED_TRITON_VERSION)


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
