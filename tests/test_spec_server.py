"""The optional [server] and [kubernetes] tables of the spec: what a containerised Triton server gets."""

from __future__ import annotations

import pytest

from tritonize.errors import SpecError
from tritonize.spec import KubernetesSpec, ServerSpec, load_spec, parse_spec

MODEL = """
[[model]]
name = "m"
checkpoint = "some/ckpt"
task = "text-classification"
demo = "distilbert"
max_queue_delay_us = 5000
"""


def test_parse_spec_server_defaults_when_tables_absent():
    spec = parse_spec(MODEL)
    assert spec.server == ServerSpec(source="<spec>") and spec.kubernetes == KubernetesSpec(source="<spec>")


def test_load_spec_shipped_server_tables_parse_when_loaded():
    spec = load_spec()
    assert (spec.server.http_port, spec.server.grpc_port, spec.server.metrics_port) == (8000, 8001, 8002)
    assert spec.server.gpus >= 1 and spec.kubernetes.max_replicas >= spec.kubernetes.replicas


def test_parse_spec_server_values_when_tables_given():
    spec = parse_spec(MODEL + "[server]\ngpus = 2\ncpus = 1.5\n[kubernetes]\nreplicas = 3\nmax_replicas = 6\n")
    assert (spec.server.gpus, spec.server.cpus, spec.kubernetes.replicas, spec.kubernetes.max_replicas) == (2, 1.5, 3, 6)


def test_kubernetes_keys_in_the_server_table_still_parse_with_a_warning():
    with pytest.warns(FutureWarning, match=r"\[server\] max_replicas, replicas moved to the \[kubernetes\] table"):
        spec = parse_spec(MODEL + "[server]\ngpus = 2\nreplicas = 3\nmax_replicas = 6\n")
    assert (spec.server.gpus, spec.kubernetes.replicas, spec.kubernetes.max_replicas) == (2, 3, 6)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("[server]\ngpus = 0", "server.gpus"),
        ("[server]\ngrpc_port = 8000", "server.http_port"),
        ("[kubernetes]\nreplicas = 3\nmax_replicas = 2", "kubernetes.max_replicas"),
        ("[server]\nshm_size_mib = 16", "server.shm_size_mib"),
        ('[server]\ngpus = "one"', "server.gpus"),
        ("[server]\ncpus = true", "server.cpus"),
        ("[server]\nbogus = 1", "server.bogus"),
        ('[kubernetes]\nmonitoring_namespace = "Mon itor"', "kubernetes.monitoring_namespace"),
        ("[server]\nqueue_time_target_us = 5000", "server.queue_time_target_us"),
    ],
)
def test_parse_spec_server_error_names_file_and_field_when_value_is_bad(table, field):
    with pytest.raises(SpecError) as info:
        parse_spec(MODEL + table + "\n", source="my.toml")
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
