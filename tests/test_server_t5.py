"""T5 deployments on the real embedded server: token-exact parity with HF generate, label scoring."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from _concurrency import model_stats, run_concurrently
from conftest import loopback_config

from tritonize.client import TritonizeClient
from tritonize.corpus import builtin_emotion, builtin_reviews, load_corpus, shared_data_path
from tritonize.errors import InferenceError
from tritonize.spec import load_spec

pytestmark = pytest.mark.triton
T5_MODELS = [m for m in load_spec().models if m.is_generative]
EMOTION = [m.name for m in T5_MODELS if "imdb" not in m.name]
NAMES = [m.name for m in T5_MODELS]
if not T5_MODELS:
    pytest.skip("the spec has no text2text-generation deployment", allow_module_level=True)


def _corpus(name: str, shared: bool) -> list[str]:
    if shared:
        path = shared_data_path("imdb", "sample.tsv") if "imdb" in name else shared_data_path("emotion", "val.txt")
        if path is None:
            pytest.skip("../shared/data is not present")
        return [e.text for e in load_corpus(path)[:200]]
    return [e.text for e in (builtin_reviews() if "imdb" in name else builtin_emotion())]


@pytest.fixture(scope="module")
def hf_models(triton_server):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    report = json.loads((triton_server.repository / "build_report.json").read_text())
    models = {}
    for name in NAMES:
        checkpoint = report["models"][name]["checkpoint"]
        models[name] = (AutoTokenizer.from_pretrained(checkpoint), AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval())
    return models


def _hf_generate(tokenizer, model, texts, max_new_tokens, max_length) -> list[list[int]]:
    import torch

    rows = []
    for start in range(0, len(texts), 16):
        enc = tokenizer(texts[start : start + 16], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        rows.extend(out[:, 1:].tolist())  # drop the decoder start token
    return rows


def _served_ids(server, name, texts, max_new_tokens, protocol="grpc") -> list[list[int]]:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    rows = []
    with TritonizeClient(url, protocol, timeout=120) as client:
        for start in range(0, len(texts), 16):
            chunk = texts[start : start + 16]
            extra = {"max_new_tokens": np.full((len(chunk), 1), max_new_tokens, dtype=np.int32)}
            rows.extend(client.infer_raw(name, chunk, ["OUTPUT_IDS"], extra_inputs=extra)["OUTPUT_IDS"].tolist())
    return rows


def _same_tokens(a: list[int], b: list[int], pad: int) -> bool:
    width = max(len(a), len(b))
    return a + [pad] * (width - len(a)) == b + [pad] * (width - len(b))


@pytest.mark.parametrize("shared", [False, True], ids=["builtin", "shared"])
@pytest.mark.parametrize("new_tokens", ["spec", 8])
@pytest.mark.parametrize("name", NAMES)
def test_generate_is_token_exact_with_hf_generate(triton_server, hf_models, name, new_tokens, shared):
    spec = load_spec().get(name)
    n = spec.max_new_tokens if new_tokens == "spec" else new_tokens
    texts = _corpus(name, shared)
    if shared and "imdb" in name:
        texts = texts[:200]
    tokenizer, model = hf_models[name]
    expected = _hf_generate(tokenizer, model, texts, n, spec.max_input_length)
    served = _served_ids(triton_server, name, texts, n)
    mismatches = [i for i, (a, b) in enumerate(zip(served, expected)) if not _same_tokens(a, b, tokenizer.pad_token_id)]
    print(f"{name} max_new_tokens={n} {'shared' if shared else 'builtin'}: {len(texts) - len(mismatches)}/{len(texts)} token-exact")
    assert len(served) == len(texts) and not mismatches, mismatches[:5]
    distinct = {tuple(r) for r in served}
    assert len(distinct) >= 2, "demo model answers the same for every input: parity would prove nothing"


@pytest.mark.parametrize("name", EMOTION)
def test_generated_text_decodes_output_ids(triton_server, hf_models, name):
    tokenizer, _ = hf_models[name]
    texts = [e.text for e in builtin_emotion()][:10]
    with TritonizeClient(triton_server.http_url, "http") as client:
        out = client.infer_raw(name, texts, ["GENERATED_TEXT", "OUTPUT_IDS"])
    for text, ids in zip(out["GENERATED_TEXT"].reshape(-1), out["OUTPUT_IDS"]):
        assert text.decode() == tokenizer.decode(ids.tolist(), skip_special_tokens=True)


def _torch_label_probs(tokenizer, model, texts, labels, max_length) -> np.ndarray:
    import torch

    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    scores = []
    with torch.no_grad():
        for label in labels:
            target = tokenizer([label] * len(texts), return_tensors="pt").input_ids  # ends with </s>
            out = model(**enc, labels=target)
            logp = torch.log_softmax(out.logits.double(), dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
            scores.append(logp.sum(dim=-1))
    return torch.softmax(torch.stack(scores, dim=1), dim=1).numpy()


@pytest.mark.parametrize("name", NAMES)
def test_label_scoring_matches_pytorch_log_likelihoods(triton_server, hf_models, name):
    spec = load_spec().get(name)
    tokenizer, model = hf_models[name]
    texts = _corpus(name, shared=False)[:40]
    expected = _torch_label_probs(tokenizer, model, texts, spec.labels, spec.max_input_length)
    with TritonizeClient(triton_server.grpc_url, "grpc", timeout=120) as client:
        served = np.concatenate(
            [client.infer_raw(name, texts[s : s + 16], ["PROBABILITIES"])["PROBABILITIES"] for s in range(0, len(texts), 16)]
        )
    diff = float(np.abs(served - expected).max())
    print(f"{name} label scoring: max |diff| = {diff:.2e}")
    assert diff <= 1e-4


@pytest.mark.parametrize("name", EMOTION)
def test_classify_works_with_t5_deployment(triton_server, name):
    with TritonizeClient(triton_server.grpc_url, "grpc") as client:
        result = client.classify(["i am so happy today", "i am scared"], model=name)
        top2 = client.classify(["i am so happy today"], model=name, top_k=2)
    labels = set(load_spec().get(name).labels)
    assert all(r["label"] in labels and 0 < r["score"] <= 1 for r in result)
    assert len(top2[0]) == 2 and top2[0][0]["score"] >= top2[0][1]["score"]


def _batching_counts(http_url: str, grpc_url: str, admin_key: str, name: str) -> dict[str, tuple[int, int]]:
    """(inferences, executions) of the entry model and its engine steps over 16 users x 2 requests."""
    models = [name, f"{name}_encoder", f"{name}_decoder"]
    before = {m: model_stats(http_url, m, admin_key) for m in models}
    texts = [e.text for e in builtin_emotion()]

    def user(client: TritonizeClient, i: int) -> None:
        for j in range(2):
            client.generate([texts[(2 * i + j) % len(texts)]], model=name)

    run_concurrently(16, user, lambda: TritonizeClient(grpc_url, "grpc", timeout=120))

    def counts_now() -> dict[str, tuple[int, ...]]:
        return {m: tuple(a - b for a, b in zip(model_stats(http_url, m, admin_key), before[m])) for m in models}

    # Triton counts a BLS entry model's request after its execute() returns, which can be just after
    # the client got its answer: wait for all 32 to be counted (bounded), then read every model.
    deadline = time.monotonic() + 30
    while counts_now()[name][0] < 32 and time.monotonic() < deadline:
        time.sleep(0.05)
    counts = counts_now()
    for m, (inf, exe) in counts.items():
        print(f"{m}: {inf} inferences in {exe} executions")
    return counts


@pytest.fixture(scope="module")
def unbatched_t5_server(triton_server, tmp_path_factory, tritonize_cache):
    """The first T5 deployment alone, every config without ``dynamic_batching``.

    The configs are the session repository's with the field cleared through Triton's protobuf,
    which is exactly what ``tritonize build --no-dynamic-batching`` writes (compared by diff);
    rebuilding would export the graphs again (minutes on 2 cores).
    """
    import shutil

    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from tritonize.server import EmbeddedServer

    name = T5_MODELS[0].name
    report = json.loads((triton_server.repository / "build_report.json").read_text())
    out = tmp_path_factory.mktemp("unbatched") / "model_repository"
    for config_path in report["models"][name]["configs"]:
        step = Path(config_path).parent.name
        shutil.copytree(triton_server.repository / step, out / step)
        config = text_format.Parse((out / config_path).read_text(), model_config_pb2.ModelConfig())
        config.ClearField("dynamic_batching")
        (out / config_path).write_text(text_format.MessageToString(config))
    (out / "build_report.json").write_text(json.dumps({**report, "models": {name: report["models"][name]}}))
    config = loopback_config(out)
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        yield server


def test_t5_entry_batcher_merges_concurrent_requests_only_when_dynamic_batching_is_on(triton_server, unbatched_t5_server):
    """Where concurrent requests merge: the entry model's batcher groups them into one ``execute()``,
    which calls each engine step once with all rows. (With one entry instance calling the steps
    synchronously, the steps' own batchers have nothing to merge.) Without dynamic batching every
    request runs alone and reaches the steps one row at a time."""
    name = T5_MODELS[0].name
    on = _batching_counts(triton_server.http_url, triton_server.grpc_url, triton_server.admin_key, name)
    off_server = unbatched_t5_server
    off = _batching_counts(off_server.http_url, off_server.grpc_url, off_server.config.admin_key, name)
    entry_inf, entry_exe = on[name]
    assert entry_inf == 32 and entry_exe < entry_inf, on  # requests merged at the entry
    encoder_inf, encoder_exe = on[f"{name}_encoder"]
    assert encoder_inf == 32 and encoder_exe < encoder_inf, on  # the merged rows reach the step together
    assert off[name] == (32, 32) and off[f"{name}_encoder"] == (32, 32), off  # no batching: one row per call


@pytest.mark.parametrize("value", [0, -3, 10_000])
def test_bad_max_new_tokens_is_rejected_and_server_keeps_serving(triton_server, value):
    name = T5_MODELS[0].name
    with TritonizeClient(triton_server.grpc_url, "grpc") as client:
        healthy = client.generate(["i feel fine", "i am so angry"], model=name, max_new_tokens=4)
        with pytest.raises(InferenceError, match="max_new_tokens must be in 1.."):
            client.generate(["hello there"], model=name, max_new_tokens=value)
        assert client.generate(["i feel fine", "i am so angry"], model=name, max_new_tokens=4) == healthy


@pytest.mark.parametrize("text", ["", "  ", b"\xff\xfe"])
def test_bad_text_is_rejected_by_t5_deployment(triton_server, text):
    name = T5_MODELS[0].name
    with TritonizeClient(triton_server.http_url, "http") as client:
        healthy = client.generate(["i feel fine"], model=name, max_new_tokens=4)
        with pytest.raises(InferenceError, match="TEXT item 0"):
            client.generate([text], model=name)
        assert client.generate(["i feel fine"], model=name, max_new_tokens=4) == healthy


def test_long_review_is_truncated_not_rejected(triton_server, hf_models):
    name = next(m.name for m in T5_MODELS if "imdb" in m.name)
    spec = load_spec().get(name)
    tokenizer, model = hf_models[name]
    review = " ".join(e.text for e in builtin_reviews()) * 3
    assert len(tokenizer(review).input_ids) > spec.max_input_length
    # Like the HF pipeline with truncation=True: the answer is that of the first max_input_length tokens.
    expected = _hf_generate(tokenizer, model, [review], spec.max_new_tokens, spec.max_input_length)
    served = _served_ids(triton_server, name, [review], spec.max_new_tokens)
    assert _same_tokens(served[0], expected[0], tokenizer.pad_token_id), (served, expected)
    with TritonizeClient(triton_server.grpc_url, "grpc", timeout=120) as client:
        assert client.classify([review], model=name)[0]["label"] in ("positive", "negative")
