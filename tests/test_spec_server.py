"""The optional [server] table of the spec: what a containerised Triton server gets."""

from __future__ import annotations

import pytest

from tritonize.errors import SpecError
from tritonize.spec import ServerSpec, load_spec, parse_spec

MODEL = """
[[model]]
name = "m"
checkpoint = "some/ckpt"
task = "text-classification"
demo = "distilbert"
max_queue_delay_us = 5000
"""


def test_parse_spec_server_defaults_when_table_absent():
    assert parse_spec(MODEL).server == ServerSpec(source="<spec>")


def test_load_spec_shipped_server_table_parses_when_loaded():
    server = load_spec().server
    assert (server.http_port, server.grpc_port, server.metrics_port) == (8000, 8001, 8002)
    assert server.gpus >= 1 and server.max_replicas >= server.replicas


def test_parse_spec_server_values_when_table_given():
    server = parse_spec(MODEL + "[server]\ngpus = 2\ncpus = 1.5\nreplicas = 3\nmax_replicas = 6\n").server
    assert (server.gpus, server.cpus, server.replicas, server.max_replicas) == (2, 1.5, 3, 6)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("gpus = 0", "server.gpus"),
        ("grpc_port = 8000", "server.http_port"),
        ("replicas = 3\nmax_replicas = 2", "server.max_replicas"),
        ("shm_size_mib = 16", "server.shm_size_mib"),
        ('gpus = "one"', "server.gpus"),
        ("cpus = true", "server.cpus"),
        ("bogus = 1", "server.bogus"),
        ('monitoring_namespace = "Mon itor"', "server.monitoring_namespace"),
        ("queue_time_target_us = 5000", "server.queue_time_target_us"),
    ],
)
def test_parse_spec_server_error_names_file_and_field_when_value_is_bad(table, field):
    with pytest.raises(SpecError) as info:
        parse_spec(MODEL + "[server]\n" + table + "\n", source="my.toml")
    assert info.value.field == field
    assert str(info.value).startswith("my.toml: field ")


def test_parse_spec_error_when_server_is_not_a_table():
    with pytest.raises(SpecError, match="server"):
        parse_spec('server = "big"\n' + MODEL)


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ("http_max_input_mib = 0", "server.http_max_input_mib", ">= 1 MiB"),
        ("cuda_memory_pool_mib = 32", "server.cuda_memory_pool_mib", ">= 64 MiB"),
        ('cuda_memory_pool_mib = "big"', "server.cuda_memory_pool_mib", "must be of type int"),
    ],
)
def test_parse_spec_server_rejects_request_limit_and_cuda_pool_out_of_range(line, field, problem):
    with pytest.raises(SpecError, match=problem) as info:
        parse_spec(MODEL + f"[server]\n{line}\n", "s.toml")
    assert info.value.field == field
    server = parse_spec(MODEL + "[server]\nhttp_max_input_mib = 4\ncuda_memory_pool_mib = 512\n").server
    assert (server.http_max_input_mib, server.cuda_memory_pool_mib) == (4, 512)
