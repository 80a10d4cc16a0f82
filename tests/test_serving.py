"""Supervision and security logic that needs no server: arguments, decisions, parsing, CLI errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import _reports
import pytest

from tritonize.cli import main
from tritonize.errors import ServerError
from tritonize.server import (
    GRPC_ADMIN_HEADER,
    INFERENCE_HEADER,
    INFERENCE_KEY_ENV,
    RESTRICTED_APIS,
    GrpcTls,
    ServerConfig,
    admin_headers,
    exposure_warning,
    inference_headers,
)
from tritonize.serving.probe import ProbeResult, repository_deployments, unhealthy_instance
from tritonize.serving.processes import StubProcess, parse_stub_cmdline
from tritonize.serving.status import read_status, write_status
from tritonize.serving.watchdog import WatchdogConfig, model_of_instance, plan_recovery
from tritonize.spec import Task
from tritonize.triton_facts import first_release_without_crashers

BINARY, BACKENDS = Path("/bin/tritonserver"), Path("/backends")


def _flag(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def test_server_args_restrict_every_admin_api_on_both_protocols_when_defaults():
    config = ServerConfig(repository=Path("repo"), admin_key="k")
    args = config.args(BINARY, BACKENDS)
    expected = f"{','.join(RESTRICTED_APIS)}:admin-key=k"
    assert _flag(args, "http-restricted-api") == expected and _flag(args, "grpc-restricted-protocol") == expected
    assert _flag(args, "model-control-mode") == "none" and _flag(args, "load-model") is None
    assert not any("ssl" in a for a in args)


def test_server_args_open_statistics_only_when_exposed():
    args = ServerConfig(repository=Path("repo"), admin_key="k", expose_statistics=True).args(BINARY, BACKENDS)
    apis = _flag(args, "http-restricted-api").split(":")[0].split(",")
    assert "statistics" not in apis and set(apis) == set(RESTRICTED_APIS) - {"statistics"}
    opened = ServerConfig(repository=Path("repo"), restrict_admin_apis=False).args(BINARY, BACKENDS)
    assert _flag(opened, "http-restricted-api") is None and _flag(opened, "grpc-restricted-protocol") is None


def test_server_args_load_every_model_explicitly_when_supervised():
    args = ServerConfig(repository=Path("repo"), model_control="explicit").args(BINARY, BACKENDS)
    assert _flag(args, "model-control-mode") == "explicit" and _flag(args, "load-model") == "*"
    with pytest.raises(ServerError, match="model control mode"):
        ServerConfig(repository=Path("repo"), model_control="poll")


def test_admin_headers_use_tritons_grpc_prefix_when_grpc():
    assert admin_headers("http", "k") == {"admin-key": "k"}
    assert admin_headers("grpc", "k") == {GRPC_ADMIN_HEADER: "k"} and GRPC_ADMIN_HEADER == "triton-grpc-protocol-admin-key"


def test_grpc_tls_args_name_every_file_when_mutual(tmp_path):
    for name in ("s.crt", "s.key", "ca.crt"):
        (tmp_path / name).write_text("pem")
    tls = GrpcTls(cert=tmp_path / "s.crt", key=tmp_path / "s.key", root_cert=tmp_path / "ca.crt", mutual=True)
    args = ServerConfig(repository=Path("repo"), grpc_tls=tls).args(BINARY, BACKENDS)
    assert _flag(args, "grpc-use-ssl") == "true" and _flag(args, "grpc-use-ssl-mutual") == "true"
    assert _flag(args, "grpc-server-cert") == str(tmp_path / "s.crt") and _flag(args, "grpc-root-cert") == str(tmp_path / "ca.crt")


def test_grpc_tls_rejects_missing_files_and_mutual_without_root(tmp_path):
    (tmp_path / "s.crt").write_text("pem")
    with pytest.raises(ServerError, match="server key .* is not a file"):
        GrpcTls(cert=tmp_path / "s.crt", key=tmp_path / "missing.key")
    (tmp_path / "s.key").write_text("pem")
    with pytest.raises(ServerError, match="mutual TLS needs a root certificate"):
        GrpcTls(cert=tmp_path / "s.crt", key=tmp_path / "s.key", mutual=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_exposure_warning_is_silent_when_host_is_loopback(host):
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "triton.example.com"])
def test_exposure_warning_names_the_vulnerabilities_when_host_is_reachable(host):
    warning = exposure_warning(host)
    for cve in ("CVE-2025-23310", "CVE-2025-23311", "CVE-2025-23319", "CVE-2025-23320", "CVE-2025-23334"):
        assert cve in warning
    fixed = first_release_without_crashers()
    assert fixed.ngc in warning and fixed.fixed_in in warning and "proxy" in warning and "inference key" in warning


@pytest.mark.parametrize(("host", "restricted"), [("127.0.0.1", False), ("::1", False), ("0.0.0.0", True), ("10.1.2.3", True)])
def test_server_args_put_inference_behind_its_own_key_exactly_when_host_is_not_loopback(host, restricted):
    config = ServerConfig(repository=Path("repo"), host=host, admin_key="a", inference_key="i")
    args = config.args(BINARY, BACKENDS)
    http = [a.split("=", 1)[1] for a in args if a.startswith("--http-restricted-api=")]
    grpc = [a.split("=", 1)[1] for a in args if a.startswith("--grpc-restricted-protocol=")]
    inference = f"inference:{INFERENCE_HEADER}=i"
    assert (inference in http, inference in grpc) == (restricted, restricted)
    assert config.client_inference_key == ("i" if restricted else None)
    assert f"{','.join(RESTRICTED_APIS)}:admin-key=a" in http  # the admin groups keep their own key


def test_server_args_follow_explicit_inference_choice_over_the_host_default():
    keyed = ServerConfig(repository=Path("repo"), inference_key="i", restrict_inference=True)
    assert f"--http-restricted-api=inference:{INFERENCE_HEADER}=i" in keyed.args(BINARY, BACKENDS)
    opened = ServerConfig(repository=Path("repo"), host="0.0.0.0", restrict_inference=False, restrict_admin_apis=False)
    assert not any("restricted" in a for a in opened.args(BINARY, BACKENDS)) and opened.client_inference_key is None
    assert inference_headers("grpc", "i") == {"triton-grpc-protocol-inference-key": "i"}
    assert inference_headers("http", None) is None


def test_serve_cli_refuses_open_inference_with_a_key_and_takes_the_key_from_the_environment(capsys, tmp_path, monkeypatch):
    assert main(["serve", "--repository", str(tmp_path), "--open-inference", "--inference-key", "k"]) == 1
    assert "--open-inference and --inference-key" in capsys.readouterr().err
    from tritonize.commands.serve import add_server_arguments, config_from_args

    monkeypatch.setenv(INFERENCE_KEY_ENV, "from-env")
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    config = config_from_args(parser.parse_args(["--repository", str(tmp_path)]))
    assert config.client_inference_key == "from-env"  # a key given (here by the variable) restricts even on loopback
    monkeypatch.delenv(INFERENCE_KEY_ENV)
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    exposed = config_from_args(parser.parse_args(["--repository", str(tmp_path), "--host", "0.0.0.0"]))
    assert exposed.inference_restricted and len(exposed.inference_key) >= 16  # random by default


def test_serve_rejects_half_a_tls_configuration_with_one_line(capsys, tmp_path):
    (tmp_path / "s.crt").write_text("pem")
    assert main(["serve", "--repository", str(tmp_path), "--grpc-server-cert", str(tmp_path / "s.crt")]) == 1
    assert "needs both --grpc-server-cert and --grpc-server-key" in capsys.readouterr().err


# -- what the watchdog reads and decides ---------------------------------------------------------

STUB_ARGV = [
    "/cache/backends-py3.11/python/triton_python_backend_stub",
    "/repo/distilbert_emotion_model/1/model.py",
    "triton_python_backend_shm_region_6f05-98fe",
    "1048576", "1048576", "12804", "/cache/backends-py3.11/python", "336",
    "distilbert_emotion_model_0_0", "DEFAULT",
]  # fmt: skip


def test_stub_cmdline_names_server_model_instance_and_region():
    stub = parse_stub_cmdline(42, STUB_ARGV, "stopped")
    assert stub == StubProcess(
        pid=42, server_pid=12804, model="distilbert_emotion_model", instance="distilbert_emotion_model_0_0",
        shm_region="triton_python_backend_shm_region_6f05-98fe", state="stopped",
    )  # fmt: skip
    assert stub.stopped
    assert parse_stub_cmdline(1, ["/usr/bin/python3", "x.py"]) is None
    assert parse_stub_cmdline(1, [*STUB_ARGV[:5], "not-a-pid", *STUB_ARGV[6:]]) is None


def test_unhealthy_instance_is_read_from_tritons_error_text():
    message = "in ensemble 'distilbert_emotion', Stub process 'distilbert_emotion_model_0_0' is not healthy."
    assert unhealthy_instance(message) == "distilbert_emotion_model_0_0"
    assert unhealthy_instance("inference request batch-size must be <= 32") is None
    assert model_of_instance("t5_small_emotion_encoder_0_1", {}) == "t5_small_emotion_encoder"
    assert model_of_instance("odd_name", {"odd_name": "odd_model"}) == "odd_model"


def _probe(ok: bool, instance: str | None = None) -> ProbeResult:
    return ProbeResult(model="d", ok=ok, latency_s=0.01, error="" if ok else "boom", unhealthy_instance=instance)


def _plan(**kw):
    args = {
        "server_running": True, "dead_stubs": [], "probes": [_probe(True)], "instance_models": {},
        "failing_rounds": 0, "reloads_since_start": 0, "config": WatchdogConfig(),
    }  # fmt: skip
    return plan_recovery(**{**args, **kw})


def test_plan_is_empty_when_everything_answers():
    assert _plan().empty


def test_plan_restarts_when_the_server_exited():
    assert _plan(server_running=False).restart == "tritonserver exited"


def test_plan_reloads_the_model_of_a_dead_or_unhealthy_stub():
    dead = parse_stub_cmdline(7, STUB_ARGV)
    assert _plan(dead_stubs=[dead]).reload == ("distilbert_emotion_model",)
    probes = [_probe(False, "d_tokenizer_0_0")]
    assert _plan(probes=probes, failing_rounds=1).reload == ("d_tokenizer",)


def test_plan_restarts_instead_of_reloading_when_the_reload_limit_is_reached():
    probes = [_probe(False, "d_tokenizer_0_0")]
    plan = _plan(probes=probes, reloads_since_start=5, config=WatchdogConfig(reloads_before_restart=5))
    assert plan.restart and not plan.reload


def test_plan_restarts_only_after_enough_unexplained_failing_rounds():
    config = WatchdogConfig(failures_before_restart=3)
    assert _plan(probes=[_probe(False)], failing_rounds=2, config=config).empty
    assert "3 rounds" in _plan(probes=[_probe(False)], failing_rounds=3, config=config).restart


def test_watchdog_config_rejects_nonsense_limits():
    with pytest.raises(ServerError):
        WatchdogConfig(probe_timeout_s=0)
    with pytest.raises(ServerError):
        WatchdogConfig(max_restarts=0)


def test_deployments_come_from_the_build_report_or_a_clear_error(tmp_path):
    _reports.write(tmp_path, {"b": Task.TEXT_CLASSIFICATION, "a": Task.TEXT2TEXT_GENERATION})
    assert repository_deployments(tmp_path) == ["a", "b"]
    with pytest.raises(ServerError, match="build_report.json"):
        repository_deployments(tmp_path / "missing")


def test_status_file_round_trips_and_reads_none_when_absent(tmp_path):
    path = tmp_path / "serve" / "status.json"
    assert read_status(path) is None
    write_status(path, {"state": "serving", "events": []})
    assert read_status(path) == {"state": "serving", "events": []}
    assert not list(path.parent.glob(".*.tmp"))
