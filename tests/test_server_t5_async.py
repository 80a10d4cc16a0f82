"""Async BLS on the real embedded server: the calls of one execute() meet at the engine steps.

The entry model awaits ``request.async_exec()`` and runs the length-bucket groups of one
``execute()`` (and greedy decoding and label scoring within a group) concurrently. With one
entry instance and blocking ``exec()`` every step request would run alone (executions ==
requests at each step); with async BLS several are in flight together and the steps' dynamic
batchers merge them (executions < requests).
"""

from __future__ import annotations

import pytest
from _concurrency import run_concurrently

from tritonize.client import TritonizeClient
from tritonize.spec import load_spec

pytestmark = pytest.mark.triton
T5_MODELS = [m for m in load_spec().models if m.is_generative and m.labels]
if not T5_MODELS:
    pytest.skip("the spec has no text2text-generation deployment with labels", allow_module_level=True)
MODEL = T5_MODELS[0]


def _requests_and_executions(http_url: str, model: str) -> tuple[int, int]:
    """(successful requests, batch executions) of a model from Triton's statistics extension."""
    import tritonclient.http as httpclient

    stats = httpclient.InferenceServerClient(http_url).get_inference_statistics(model)["model_stats"][0]
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
    texts = _texts_per_bucket(triton_server.repository, 3)
    steps = [f"{MODEL.name}_encoder", f"{MODEL.name}_decoder", f"{MODEL.name}_decoder_with_past"]
    before = {s: _requests_and_executions(triton_server.http_url, s) for s in steps}
    entry_before = _requests_and_executions(triton_server.http_url, MODEL.name)

    def user(client: TritonizeClient, i: int) -> None:
        for j in range(3):
            out = client.infer_raw(MODEL.name, [texts[(i + j) % len(texts)]], ["OUTPUT_IDS", "PROBABILITIES"])
            assert out["PROBABILITIES"].shape == (1, len(MODEL.labels))

    run_concurrently(8, user, lambda: TritonizeClient(triton_server.grpc_url, "grpc", timeout=120))
    entry = [a - b for a, b in zip(_requests_and_executions(triton_server.http_url, MODEL.name), entry_before)]
    print(f"{MODEL.name}: {entry[0]} requests in {entry[1]} executions")
    assert entry[0] == 24
    counts = {}
    for s in steps:
        counts[s] = [a - b for a, b in zip(_requests_and_executions(triton_server.http_url, s), before[s])]
        print(f"{s}: {counts[s][0]} requests in {counts[s][1]} executions")
    requests, executions = counts[f"{MODEL.name}_decoder"]
    # every group sends greedy decoding's first step and label scoring together
    assert requests >= 2 * entry[1] and executions < requests
    # the length-bucket groups of one execute() send their encoder calls together
    requests, executions = counts[f"{MODEL.name}_encoder"]
    assert requests > entry[1] and executions < requests
