"""Async BLS on the real embedded server: the calls of one execute() meet at the engine steps.

The entry model awaits ``request.async_exec()`` and runs the length-bucket groups of one
``execute()`` (and greedy decoding and label scoring within a group) concurrently. With one
entry instance and blocking ``exec()`` every step request would run alone (executions ==
requests at each step); with async BLS several are in flight together and the steps' dynamic
batchers merge them (executions < requests).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _concurrency import run_concurrently

from tritonize.client import TritonizeClient
from tritonize.corpus import builtin_emotion
from tritonize.spec import load_spec

pytestmark = pytest.mark.triton
T5_MODELS = [m for m in load_spec().models if m.is_generative and m.labels]
if not T5_MODELS:
    pytest.skip("the spec has no text2text-generation deployment with labels", allow_module_level=True)
MODEL = T5_MODELS[0]
STEPS = [f"{MODEL.name}_encoder", f"{MODEL.name}_decoder", f"{MODEL.name}_decoder_with_past"]


def _requests_and_executions(http_url: str, model: str, admin_key: str) -> tuple[int, int]:
    """(successful requests, batch executions) of a model from Triton's statistics extension
    (restricted: the request sends the server's admin key)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    stats = client.get_inference_statistics(model, headers={"admin-key": admin_key})["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"]), int(stats["execution_count"])


def _texts_per_bucket(repository, count: int) -> list[str]:
    """``count`` texts whose token lengths fall in different length buckets of the deployment."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(repository / MODEL.name / "1" / "tokenizer.json"))
    words = "i feel so happy and calm today because my friends came over to visit me at home".split()
    by_bucket: dict[int, str] = {}
    for n in range(1, 8 * len(words)):
        text = " ".join(words[i % len(words)] for i in range(n))
        by_bucket.setdefault(MODEL.bucket_for(len(tokenizer.encode(text).ids)), text)
    assert len(by_bucket) >= count, by_bucket.keys()
    return [by_bucket[b] for b in sorted(by_bucket)[:count]]


def test_async_bls_merges_step_calls_of_one_execute_when_clients_send_mixed_lengths(triton_server):
    log = triton_server.server.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"{MODEL.name}: step outputs as numpy arrays in host memory" in log  # step_memory = "cpu"
    texts = _texts_per_bucket(triton_server.repository, 3)
    steps = STEPS
    before = {s: _requests_and_executions(triton_server.http_url, s, triton_server.admin_key) for s in steps}
    entry_before = _requests_and_executions(triton_server.http_url, MODEL.name, triton_server.admin_key)

    extra = {"max_new_tokens": np.full((1, 1), 4, dtype=np.int32)}  # decoder_with_past steps too

    def user(client: TritonizeClient, i: int) -> None:
        for j in range(3):
            text = texts[(i + j) % len(texts)]
            out = client.infer_raw(MODEL.name, [text], ["OUTPUT_IDS", "PROBABILITIES"], extra_inputs=extra)
            assert out["PROBABILITIES"].shape == (1, len(MODEL.labels))

    run_concurrently(8, user, lambda: TritonizeClient(triton_server.grpc_url, "grpc", timeout=120))
    entry = [a - b for a, b in zip(_requests_and_executions(triton_server.http_url, MODEL.name, triton_server.admin_key), entry_before)]
    print(f"{MODEL.name}: {entry[0]} requests in {entry[1]} executions")
    assert entry[0] == 24
    counts = {}
    for s in steps:
        counts[s] = [a - b for a, b in zip(_requests_and_executions(triton_server.http_url, s, triton_server.admin_key), before[s])]
        print(f"{s}: {counts[s][0]} requests in {counts[s][1]} executions")
    requests, executions = counts[f"{MODEL.name}_decoder"]
    # every group sends greedy decoding's first step and label scoring together
    assert requests >= 2 * entry[1] and executions < requests
    # the length-bucket groups of one execute() send their encoder calls together
    requests, executions = counts[f"{MODEL.name}_encoder"]
    assert requests > entry[1] and executions < requests


@pytest.fixture(scope="module")
def torch_step_server(triton_server, tritonize_cache, tmp_path_factory):
    """A second server with the same deployment whose entry model uses ``step_memory = "cpu-torch"``:
    the GPU path's code (torch tensors, ``Tensor.from_dlpack`` / ``to_dlpack`` between steps) on host memory."""
    from google.protobuf import text_format

    from tritonize.repository.triton_config import parse_pbtxt
    from tritonize.server import EmbeddedServer, ServerConfig, free_port

    repository = tmp_path_factory.mktemp("torch-steps") / "model_repository"
    for name in (MODEL.name, *STEPS):
        shutil.copytree(triton_server.repository / name, repository / name)
    config_path = repository / MODEL.name / "config.pbtxt"
    config = parse_pbtxt(config_path.read_text())
    assert config.parameters["step_memory"].string_value == "cpu"  # what the build generates for embedded
    config.parameters["step_memory"].string_value = "cpu-torch"
    config_path.write_text(text_format.MessageToString(config))
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    config = ServerConfig(repository=repository, start_timeout_s=180, **ports)
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
        assert f"{MODEL.name}: step outputs as torch tensors on cpu through DLPack" in log
        yield server


def _answers(url: str, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
    ids, probs = [], []
    with TritonizeClient(url, "grpc", timeout=120) as client:
        for start in range(0, len(texts), 8):
            chunk = texts[start : start + 8]
            extra = {"max_new_tokens": np.full((len(chunk), 1), 8, dtype=np.int32)}
            out = client.infer_raw(MODEL.name, chunk, ["OUTPUT_IDS", "PROBABILITIES"], extra_inputs=extra)
            ids += out["OUTPUT_IDS"].tolist()
            probs.append(out["PROBABILITIES"])
    return ids, np.concatenate(probs)


def test_torch_dlpack_step_path_answers_like_numpy_path_when_served(triton_server, torch_step_server):
    assert 8 * len(MODEL.labels) > MODEL.batching.max_batch_size  # scoring's decoder call is chunked, then concatenated
    texts = [e.text for e in builtin_emotion()][:24] + _texts_per_bucket(triton_server.repository, 3)
    numpy_ids, numpy_probs = _answers(triton_server.grpc_url, texts)
    torch_ids, torch_probs = _answers(torch_step_server.grpc_url, texts)
    assert torch_ids == numpy_ids
    assert len({tuple(r) for r in numpy_ids}) >= 2
    diff = float(np.abs(torch_probs - numpy_probs).max())
    print(f"{MODEL.name} torch/DLPack steps vs numpy steps: ids equal, max |probs diff| = {diff:.2e}")
    assert diff < 1e-5
    # one text, generation only: nothing to overlap, the blocking exec() path on torch tensors
    for text in texts[:4]:
        answers = []
        for url in (triton_server.grpc_url, torch_step_server.grpc_url):
            with TritonizeClient(url, "grpc", timeout=120) as client:
                answers.append(client.infer_raw(MODEL.name, [text], ["OUTPUT_IDS"])["OUTPUT_IDS"].tolist())
        assert answers[0] == answers[1]
