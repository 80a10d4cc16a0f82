"""The server's exposed surface on the real server: what is closed behind the admin key, gRPC TLS.

Every API group Triton 2.51 can restrict is called over HTTP and gRPC, without and with the
key. Inference-only groups stay open. TLS uses a CA and certificates made in the test with the
``openssl`` CLI, on throwaway servers (``classifier_repository``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonize.server import GrpcTls, ServerConfig, admin_headers
from tritonize.triton_facts import CLIENT_APIS, RESTRICTED_APIS

pytestmark = pytest.mark.triton
MODEL = "distilbert_emotion"

# One call per API group; each takes the client and optional headers.
RESTRICTED_CALLS = {
    "model-repository": lambda c, h: c.get_model_repository_index(headers=h),
    "shared-memory": lambda c, h: c.get_system_shared_memory_status(headers=h),
    "statistics": lambda c, h: c.get_inference_statistics(MODEL, headers=h),
    "trace": lambda c, h: c.get_trace_settings(headers=h),
    "logging": lambda c, h: c.get_log_settings(headers=h),
}


def _infer(client, module) -> str:
    tensor = module.InferInput("TEXT", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"i am so happy today"]], dtype=np.object_))
    return client.infer(MODEL, [tensor], outputs=[module.InferRequestedOutput("LABEL")]).as_numpy("LABEL")[0, 0].decode()


OPEN_CALLS = {
    "health": lambda c, m: c.is_server_ready(),
    "metadata": lambda c, m: c.get_model_metadata(MODEL),
    "inference": _infer,
    "model-config": lambda c, m: c.get_model_config(MODEL),
}


def _client(server, protocol: str, **kwargs):
    if protocol == "grpc":
        return grpcclient.InferenceServerClient(server.grpc_url, **kwargs)
    return httpclient.InferenceServerClient(server.http_url, connection_timeout=10, network_timeout=10)


def test_restricted_and_open_api_lists_cover_every_group_triton_accepts():
    # The groups `tritonserver --help` lists for --http-restricted-api in 2.51.
    accepted = {"health", "metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics", "trace", "logging"}
    assert set(RESTRICTED_APIS) | set(CLIENT_APIS) == accepted and not set(RESTRICTED_APIS) & set(CLIENT_APIS)
    assert set(RESTRICTED_CALLS) == set(RESTRICTED_APIS) and set(OPEN_CALLS) == set(CLIENT_APIS)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("api", RESTRICTED_APIS)
def test_restricted_api_answers_only_with_the_admin_key(triton_server, api, protocol):
    client = _client(triton_server, protocol)
    try:
        with pytest.raises(InferenceServerException, match="restricted"):
            RESTRICTED_CALLS[api](client, None)
        with pytest.raises(InferenceServerException, match="restricted"):
            RESTRICTED_CALLS[api](client, admin_headers(protocol, "wrong-key"))
        assert RESTRICTED_CALLS[api](client, admin_headers(protocol, triton_server.admin_key)) is not None
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("api", CLIENT_APIS)
def test_inference_apis_stay_open_without_the_key(triton_server, api, protocol):
    module = grpcclient if protocol == "grpc" else httpclient
    client = _client(triton_server, protocol)
    try:
        result = OPEN_CALLS[api](client, module)
    finally:
        client.close()
    if api == "health":
        assert result is True
    elif api == "inference":
        assert result in {"sadness", "joy", "love", "anger", "fear", "surprise"}
    else:
        as_dict = result if isinstance(result, dict) else {"name": getattr(result, "name", "") or result.config.name}
        assert as_dict.get("name", as_dict.get("config", {}).get("name")) == MODEL


# -- statistics exposed, and gRPC TLS, on throwaway servers --------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=tritonize test CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra, cwd=d)
    return d


def _throwaway(repository: Path, cache: Path, **kwargs):
    from tritonize.server import EmbeddedServer, free_port

    config = ServerConfig(
        repository=repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), start_timeout_s=180, **kwargs
    )
    return EmbeddedServer(config, cache_dir=cache)


def _tls_infer(server, certs: Path, client_cert: bool) -> str:
    extra = {"private_key": str(certs / "client.key"), "certificate_chain": str(certs / "client.crt")} if client_cert else {}
    client = grpcclient.InferenceServerClient(server.grpc_url, ssl=True, root_certificates=str(certs / "ca.crt"), **extra)
    try:
        tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"i am so happy today"]], dtype=np.object_))
        result = client.infer(MODEL, [tensor], client_timeout=30)
        return result.as_numpy("LABEL")[0, 0].decode()
    finally:
        client.close()


def test_grpc_tls_serves_tls_clients_and_exposed_statistics_when_configured(classifier_repository, tritonize_cache, certificates):
    tls = GrpcTls(cert=certificates / "server.crt", key=certificates / "server.key")
    with _throwaway(classifier_repository, tritonize_cache, grpc_tls=tls, expose_statistics=True) as server:
        assert _tls_infer(server, certificates, client_cert=False)
        plain = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            with pytest.raises(InferenceServerException):
                plain.is_server_live(client_timeout=5)  # a plaintext client cannot talk to a TLS port
        finally:
            plain.close()
        client = grpcclient.InferenceServerClient(server.grpc_url, ssl=True, root_certificates=str(certificates / "ca.crt"))
        try:
            stats = client.get_inference_statistics(MODEL, as_json=True, client_timeout=10)  # exposed: no key
            assert stats["model_stats"][0]["name"] == MODEL
            with pytest.raises(InferenceServerException, match="restricted"):
                client.get_model_repository_index(client_timeout=10)  # the rest stays closed
        finally:
            client.close()


def test_grpc_mutual_tls_refuses_clients_without_a_certificate(classifier_repository, tritonize_cache, certificates):
    tls = GrpcTls(cert=certificates / "server.crt", key=certificates / "server.key", root_cert=certificates / "ca.crt", mutual=True)
    with _throwaway(classifier_repository, tritonize_cache, grpc_tls=tls) as server:
        assert _tls_infer(server, certificates, client_cert=True)
        with pytest.raises(InferenceServerException):
            _tls_infer(server, certificates, client_cert=False)
