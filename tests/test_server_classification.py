"""The DistilBERT emotion ensemble on a real embedded Triton server (no mocks)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from _concurrency import model_stats, run_concurrently
from conftest import data_file

from tritonize.client import TritonizeClient, classify
from tritonize.corpus import builtin_emotion, load_corpus
from tritonize.errors import InferenceError, ModelNotFoundError, ServerUnavailableError
from tritonize.server import free_port

pytestmark = pytest.mark.triton
MODEL = "distilbert_emotion"
LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def _report(server) -> dict:
    return json.loads((server.repository / "build_report.json").read_text())


@pytest.fixture(scope="module")
def hf_pipeline(triton_server):
    from transformers import pipeline

    checkpoint = _report(triton_server)["models"][MODEL]["checkpoint"]
    return pipeline("text-classification", model=checkpoint, tokenizer=checkpoint, top_k=None, device="cpu")


def _hf_probabilities(pipe, texts: list[str]) -> np.ndarray:
    rows = pipe(texts, truncation=True, batch_size=1)
    return np.array([[{d["label"]: d["score"] for d in row}[lab] for lab in LABELS] for row in rows])


def _served_probabilities(server, texts: list[str], protocol: str) -> np.ndarray:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    with TritonizeClient(url, protocol) as client:
        chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
        return np.concatenate([client.infer_raw(MODEL, c, ["PROBABILITIES"])["PROBABILITIES"] for c in chunks])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_probabilities_match_hf_pipeline_on_builtin_corpus(triton_server, hf_pipeline, protocol):
    texts = [e.text for e in builtin_emotion()]
    served = _served_probabilities(triton_server, texts, protocol)
    expected = _hf_probabilities(hf_pipeline, texts)
    diff = float(np.abs(served - expected).max())
    print(f"parity builtin ({protocol}): {len(texts)} texts, max |diff| = {diff:.2e}")
    assert diff <= 1e-4
    # the demo model must be input-sensitive, or parity would prove nothing
    assert len(set(served.argmax(axis=1).tolist())) >= 3
    assert float(served.std(axis=0).max()) > 1e-3


def test_served_probabilities_match_hf_pipeline_on_emotion_val(triton_server, hf_pipeline):
    texts = [e.text for e in load_corpus(data_file("emotion", "val.txt"))[:200]]
    served = _served_probabilities(triton_server, texts, "grpc")
    diff = float(np.abs(served - _hf_probabilities(hf_pipeline, texts)).max())
    print(f"parity shared val: {len(texts)} texts, max |diff| = {diff:.2e}")
    assert len(texts) == 200 and diff <= 1e-4
    assert len(set(served.argmax(axis=1).tolist())) >= 3


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_classify_returns_pipeline_shaped_results(triton_server, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    texts = ["i feel wonderful", "i am terrified", "what a surprise"]
    result = classify(texts, url=url, protocol=protocol)
    assert len(result) == 3
    for item in result:
        assert set(item) == {"label", "score"} and item["label"] in LABELS and 0 < item["score"] <= 1
    top3 = classify(texts, url=url, protocol=protocol, top_k=3)
    for row, best in zip(top3, result):
        assert len(row) == 3 and row[0]["label"] == best["label"]
        assert abs(row[0]["score"] - best["score"]) < 1e-5
        assert row[0]["score"] >= row[1]["score"] >= row[2]["score"]


def test_classify_splits_lists_longer_than_max_batch_size(triton_server):
    texts = [e.text for e in builtin_emotion()][:70]
    assert len(classify(texts, url=triton_server.grpc_url)) == 70


def test_dynamic_batching_merges_concurrent_requests_at_model_step(triton_server):
    texts = [e.text for e in builtin_emotion()]
    step = f"{MODEL}_model"
    before = model_stats(triton_server.http_url, step, triton_server.admin_key)

    def user(client: TritonizeClient, i: int) -> None:
        for j in range(3):
            client.classify([texts[(i * 3 + j) % len(texts)]])

    run_concurrently(32, user, lambda: TritonizeClient(triton_server.grpc_url, "grpc"))
    after = model_stats(triton_server.http_url, step, triton_server.admin_key)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    print(f"model step: {inferences} inferences in {executions} executions (mean batch {inferences / executions:.2f})")
    assert inferences == 96 and executions < inferences


def test_ensemble_config_and_metadata_match_contract(triton_server):
    with TritonizeClient(triton_server.http_url, "http") as client:
        config = client.model_config(MODEL)
        meta = client.model_metadata(MODEL)
    assert config["platform"] == "ensemble" and config["max_batch_size"] == 32
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [("TEXT", "TYPE_STRING", [1])]
    outputs = {o["name"]: (o["data_type"], o["dims"], o.get("label_filename", "")) for o in config["output"]}
    assert outputs == {
        "LABEL": ("TYPE_STRING", [1], ""),
        "SCORE": ("TYPE_FP32", [1], ""),
        "PROBABILITIES": ("TYPE_FP32", [6], "labels.txt"),
    }
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"LABEL": "BYTES", "SCORE": "FP32", "PROBABILITIES": "FP32"}
    assert meta["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}]


def test_plain_kserve_json_request_gets_all_outputs(triton_server):
    body = {"inputs": [{"name": "TEXT", "shape": [2, 1], "datatype": "BYTES", "data": ["i love you", "i hate this"]}]}
    request = urllib.request.Request(
        f"http://{triton_server.http_url}/v2/models/{MODEL}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = json.loads(resp.read())
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert set(outputs) == {"LABEL", "SCORE", "PROBABILITIES"}
    assert outputs["PROBABILITIES"]["shape"] == [2, 6] and all(lab in LABELS for lab in outputs["LABEL"]["data"])


def _raw_infer(server, data: np.ndarray, datatype: str, model: str = MODEL):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    tensor = httpclient.InferInput("TEXT", list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return client.infer(model, [tensor])


def _assert_still_serving(server) -> None:
    assert classify(["still alive and happy"], url=server.grpc_url)[0]["label"] in LABELS


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([""], "empty"),
        (["   \n\t "], "empty"),
        ([b"caf\xe9 \xff"], "not valid UTF-8"),
        (["ok", ""], "item 1 is empty"),
        (["x" * (2 << 20)], "more than the limit"),
    ],
    ids=["empty", "whitespace", "non-utf8", "one-bad-item", "over-2MiB"],
)
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_text_gets_clear_error_and_server_keeps_serving(triton_server, texts, message, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with pytest.raises(InferenceError) as info:
        classify(texts, url=url, protocol=protocol)
    assert message in str(info.value) and url in str(info.value) and MODEL in str(info.value)
    _assert_still_serving(triton_server)


def test_100kb_text_is_truncated_not_rejected(triton_server):
    text = "i am so happy today " * 5000  # 100 kB
    assert len(text.encode()) == 100_000
    (result,) = classify([text], url=triton_server.http_url, protocol="http")
    assert result["label"] in LABELS
    _assert_still_serving(triton_server)


@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [
        (np.ones((1, 1), dtype=np.float32), "FP32", "data-type"),
        (np.array([[b"a", b"b"]], dtype=object), "BYTES", "shape"),
        (np.array([[b"a"]] * 33, dtype=object), "BYTES", "batch-size must be <= 32"),
    ],
    ids=["wrong-dtype", "wrong-shape", "over-max-batch"],
)
def test_bad_tensor_gets_clear_error_and_server_keeps_serving(triton_server, data, datatype, message):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as info:
        _raw_infer(triton_server, data, datatype)
    assert message in str(info.value).lower().replace("datatype", "data-type")
    _assert_still_serving(triton_server)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unknown_model_raises_model_not_found(triton_server, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with pytest.raises(ModelNotFoundError) as info:
        classify(["hello"], model="no_such_model", url=url, protocol=protocol)
    assert "no_such_model" in str(info.value) and url in str(info.value)
    _assert_still_serving(triton_server)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_server_down_raises_server_unavailable_naming_url(protocol):
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnavailableError) as info:
        classify(["hello"], url=url, protocol=protocol, timeout=5)
    assert url in str(info.value)


def test_admin_endpoints_need_the_admin_header(triton_server):
    url = f"http://{triton_server.http_url}/v2/repository/index"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=10)
    assert info.value.code in (401, 403)
    request = urllib.request.Request(url, data=b"{}", headers={"admin-key": triton_server.admin_key})
    with urllib.request.urlopen(request, timeout=10) as resp:
        names = {m["name"] for m in json.loads(resp.read())}
    assert {MODEL, f"{MODEL}_model"} <= names  # the embedded target's fused step (spec: fuse_steps)
