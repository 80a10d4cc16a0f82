"""The PyTorch runtime through the real embedded server, on PyTorch CPU.

The shipped classifier and t5-small deployments are built with ``embedded_runtime = "torch-cpu"``
from the same tiny demo checkpoints as the session repository (ONNX Runtime, the default), and
served beside it: every answer of the torch steps is compared with the ONNX path's: classifier
probabilities within the spec's tolerance, T5 tokens exact (and exact with ``model.generate``).
Also: bad input answered clearly, and a repository whose step asks for CUDA failing to load with
a clear message.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import _serve, loopback_config

from tritonize.client import TritonizeClient
from tritonize.corpus import builtin_emotion
from tritonize.errors import InvalidRequestError, ServerError
from tritonize.spec import Precision, Runtime, Spec, load_spec

pytestmark = pytest.mark.triton
SHIPPED = load_spec()
CLASSIFIER = SHIPPED.get("distilbert_emotion").replace(embedded_runtime=Runtime.TORCH_CPU, python_instances=1)
GENERATOR = SHIPPED.get("t5_small_emotion").replace(embedded_runtime=Runtime.TORCH_CPU)
TEXTS = [e.text for e in builtin_emotion()] + ["i feel " + "really " * 60 + "happy today", "word " * 700]


@pytest.fixture(scope="module")
def torch_repository(tmp_path_factory: pytest.TempPathFactory, tritonize_cache: Path) -> Path:
    from tritonize.pipeline import BuildOptions, build

    out = tmp_path_factory.mktemp("torch") / "model_repository"
    spec = Spec(models=(CLASSIFIER, GENERATOR), server=SHIPPED.server)
    build(BuildOptions(spec=spec, out=out, demo="tiny", cache_dir=tritonize_cache))
    return out


@pytest.fixture(scope="module")
def torch_server(torch_repository: Path, tritonize_cache: Path):
    yield from _serve(torch_repository, tritonize_cache)


def _chunks(texts: list[str], size: int = 32) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def test_build_writes_the_checkpoint_plan_and_gate_of_the_torch_step(torch_repository: Path) -> None:
    from tritonclient.grpc import model_config_pb2

    from tritonize.repository.triton_config import parse_pbtxt

    report = json.loads((torch_repository / "build_report.json").read_text())
    entry = report["models"][CLASSIFIER.name]
    assert entry["runtime"]["runtime"] == "torch-cpu" and entry["runtime"]["plans"]["model"]["precision"] == "fp32"
    assert entry["accuracy_gate"]["top1_agreement"] == 1.0
    assert entry["accuracy_gate"]["max_abs_diff"] < CLASSIFIER.gate.engine_tolerance[Precision.FP32]
    step = torch_repository / f"{CLASSIFIER.name}_model"
    assert {"config.json", "model.safetensors", "model.py"} <= {p.name for p in (step / "1").iterdir()}
    assert not (step / "1" / "model.onnx").exists()
    config = parse_pbtxt((step / "config.pbtxt").read_text())
    assert config.parameters["runtime"].string_value == "torch-cpu"
    assert [(g.kind, list(g.gpus)) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, [])]
    t5 = report["models"][GENERATOR.name]
    assert t5["models"] == [GENERATOR.name]  # no engine steps: the entry model runs the components itself
    assert t5["accuracy_gate"]["token_agreement"] == 1.0 and t5["accuracy_gate"]["sequence_agreement"] == 1.0


def test_served_torch_classifier_matches_the_onnx_runtime_deployment_within_the_spec_tolerance(
    torch_server, triton_server
) -> None:
    torch_probs, ort_probs, torch_labels, ort_labels = [], [], [], []
    with TritonizeClient(torch_server.grpc_url) as client, TritonizeClient(triton_server.grpc_url) as reference:
        for chunk in _chunks(TEXTS):
            ours = client.infer_raw(CLASSIFIER.name, chunk, ["LABEL", "PROBABILITIES"])
            theirs = reference.infer_raw(CLASSIFIER.name, chunk, ["LABEL", "PROBABILITIES"])
            torch_probs.append(ours["PROBABILITIES"])
            ort_probs.append(theirs["PROBABILITIES"])
            torch_labels += ours["LABEL"].reshape(-1).tolist()
            ort_labels += theirs["LABEL"].reshape(-1).tolist()
        pipeline_shaped = client.classify(TEXTS[:3], CLASSIFIER.name)
    ours, theirs = np.concatenate(torch_probs), np.concatenate(ort_probs)
    assert ours.shape == (len(TEXTS), 6)
    assert float(np.abs(ours - theirs).max()) < CLASSIFIER.gate.tolerance
    assert torch_labels == ort_labels and len(set(torch_labels)) >= 2
    assert [r["label"] for r in pipeline_shaped] == [label.decode() for label in torch_labels[:3]]


def _served_generation(client: TritonizeClient, model: str, texts: list[str], new_tokens: int) -> tuple[list, np.ndarray]:
    ids, probs = [], []
    for chunk in _chunks(texts):
        extra = {"max_new_tokens": np.full((len(chunk), 1), new_tokens, dtype=np.int32)}
        out = client.infer_raw(model, chunk, ["OUTPUT_IDS", "PROBABILITIES"], extra_inputs=extra)
        ids += [[t for t in row if t != 0] for row in out["OUTPUT_IDS"].tolist()]
        probs.append(out["PROBABILITIES"])
    return ids, np.concatenate(probs)


def test_served_torch_t5_is_token_exact_with_the_onnx_deployment_and_generate(
    torch_server, triton_server, torch_repository
) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    texts = TEXTS[:64] + TEXTS[-2:]
    with TritonizeClient(torch_server.grpc_url, timeout=120) as client:
        ours, our_probs = _served_generation(client, GENERATOR.name, texts, 4)
    with TritonizeClient(triton_server.grpc_url, timeout=120) as reference:
        theirs, their_probs = _served_generation(reference, GENERATOR.name, texts, 4)
    assert ours == theirs and len({tuple(t) for t in ours}) >= 2
    assert float(np.abs(our_probs - their_probs).max()) < GENERATOR.gate.tolerance
    checkpoint = json.loads((torch_repository / "build_report.json").read_text())["models"][GENERATOR.name]["checkpoint"]
    tokenizer, model = AutoTokenizer.from_pretrained(checkpoint), AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    generated = []
    for chunk in _chunks(texts, 16):
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=GENERATOR.max_input_length)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=4, do_sample=False, num_beams=1)
        generated += [[t for t in row if t != 0] for row in out[:, 1:].tolist()]
    assert ours == generated


def test_torch_steps_answer_bad_input_clearly_and_keep_serving(torch_server) -> None:
    with TritonizeClient(torch_server.grpc_url) as client:
        with pytest.raises(InvalidRequestError, match="TEXT item 1 is empty"):
            client.infer_raw(CLASSIFIER.name, ["fine", "   "], ["LABEL"])
        with pytest.raises(InvalidRequestError, match="TEXT item 0 is not valid UTF-8"):
            client.infer_raw(CLASSIFIER.name, [b"\xff\xfe"], ["LABEL"])
        with pytest.raises(InvalidRequestError, match=f"max_new_tokens must be in 1..{GENERATOR.generation.max_new_tokens_limit}"):
            client.infer_raw(GENERATOR.name, ["i am sad"], ["OUTPUT_IDS"], extra_inputs={"max_new_tokens": np.array([[0]], dtype=np.int32)})
        assert client.classify(["i am so happy"], CLASSIFIER.name)[0]["label"]
        assert client.generate(["i am so happy"], GENERATOR.name)[0]["generated_text"]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_repository(torch_repository: Path, out: Path, instance_kind: str | None = None) -> Path:
    """The classifier of ``torch_repository`` with configs generated for torch-cuda (what a build on
    a GPU machine writes); ``instance_kind`` overrides the step's placement."""
    from tritonize.repository.classification import classification_configs
    from tritonize.repository.triton_config import parse_pbtxt, write_config
    from tritonize.spec import Target

    out.mkdir(parents=True)
    step = f"{CLASSIFIER.name}_model"
    for name in (CLASSIFIER.name, step):
        shutil.copytree(torch_repository / name, out / name)
    params = {k: v.string_value for k, v in parse_pbtxt((out / step / "config.pbtxt").read_text()).parameters.items()}
    torch_params = {k: params[k] for k in ("torch_model_class", "torch_plans")}
    torch_params.update(runtime="torch-cuda", device="cuda", cuda_graphs="true")
    model = CLASSIFIER.replace(embedded_runtime=Runtime.TORCH_CUDA)
    configs = classification_configs(model, Target.EMBEDDED, 6, int(params["pad_token_id"]), True, torch_params)
    for config in configs:
        if config.name == step and instance_kind:
            config = dataclasses.replace(config, instance_kind=instance_kind)
        write_config(config, out)
    return out


def _start_failure(repository: Path, cache: Path) -> str:
    from tritonize.server import EmbeddedServer

    server = EmbeddedServer(loopback_config(repository), cache_dir=cache)
    with pytest.raises(ServerError):
        server.start()
    return server.log_path.read_text(errors="replace")


def test_a_torch_cuda_repository_fails_to_load_clearly_when_there_is_no_gpu(torch_repository, tmp_path, tritonize_cache) -> None:
    """Without a GPU Triton refuses the step's KIND_GPU instances itself: one line naming the model."""
    if _cuda_available():
        pytest.skip("this machine has a GPU: the repository would load")
    log = _start_failure(_cuda_repository(torch_repository, tmp_path / "repo"), tritonize_cache)
    assert f"instance group {CLASSIFIER.name}_model_0 of model {CLASSIFIER.name}_model has kind KIND_GPU but no GPUs are available" in log


def test_a_torch_cuda_step_whose_torch_has_no_cuda_fails_its_load_with_the_runtime_message(
    torch_repository, tmp_path, tritonize_cache
) -> None:
    """A server that sees a GPU while the stub's torch sees none (a CPU-only torch wheel): the step's
    initialize fails with the one-line runtime message in the load error, no stub crash. Here the
    instance is placed on the CPU so that Triton runs initialize on a machine without a GPU."""
    import torch

    if _cuda_available():
        pytest.skip("this torch sees a CUDA device")
    log = _start_failure(_cuda_repository(torch_repository, tmp_path / "repo", "KIND_CPU"), tritonize_cache)
    load_errors = [line for line in log.splitlines() if "failed to load" in line and f"{CLASSIFIER.name}_model" in line]
    assert load_errors, log[-2000:]
    assert f"RuntimeUnavailable: embedded_runtime torch-cuda needs CUDA, and torch {torch.__version__}" in load_errors[0]
    assert "Segmentation" not in log and "Stub process" not in log


@pytest.mark.slow
def test_bench_torch_rows_run_end_to_end_against_the_served_torch_runtime(torch_server, tmp_path: Path) -> None:
    """The GPU bench's rows on PyTorch CPU and the tiny demo: a smoke test, no figure is judged."""
    from tritonize.bench import BenchConfig, Load, RowKey, RowPath, run_bench

    config = BenchConfig(
        demo="tiny", quick=True, client_processes=1, rows="torch", texts=32, half_load_s=1.0, saturation_s=1.0,
        repository=torch_server.repository, http_url=torch_server.http_url, grpc_url=torch_server.grpc_url,
        admin_key=torch_server.admin_key, metrics_url=torch_server.metrics_url, model=CLASSIFIER.name, out=tmp_path,
    )  # fmt: skip
    result = run_bench(config, log=lambda line: None)
    keys = {r.key for r in result.rows}
    for expected in [
        RowKey(path=RowPath.SERVED, load=Load.CONCURRENCY, level=128, protocol="grpc"),
        RowKey(path=RowPath.SERVED, load=Load.CONCURRENCY, level=1, protocol="http"),
        RowKey(path=RowPath.SERVED, load=Load.SATURATION, level=4, protocol="grpc", texts_per_request=32),
        RowKey(path=RowPath.SERVED, load=Load.OPEN_LOOP, protocol="grpc", texts_per_request=32),
        RowKey(path=RowPath.RAW_TORCH, load=Load.BATCH, level=1),
        RowKey(path=RowPath.RAW_TORCH, load=Load.BATCH, level=256, sorted_by_length=True),
        RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=32),
        RowKey(path=RowPath.SERVED, load=Load.CONCURRENCY, level=32, protocol="grpc", generative=True),
        RowKey(path=RowPath.HF_GENERATE, load=Load.BATCH, level=32, generative=True),
    ]:
        assert expected in keys, expected
    assert all(r.seq_per_s > 0 for r in result.rows)
    saturated = [r for r in result.rows if r.key.load is Load.SATURATION]
    assert saturated and all(f"{CLASSIFIER.name}_model" in r.server for r in saturated)  # per-step compute times
    goals = {g["goal"]: g for g in result.goals}
    assert {"served classifications/s, 32-text requests", "served / raw PyTorch at saturation",
            "p99 ms of 32-text requests at half load", "T5 served c32 / model.generate batch 32"} <= set(goals)  # fmt: skip
    assert all(goals[name]["measured"] is not None for name in goals)
    assert any("CUDA graphs: not measured" in note for note in result.notes)
    assert any("no nv_gpu_* metrics" in note for note in result.notes)  # no GPU here: none exported
    assert "| raw PyTorch | batch 256, sorted by length |" in (tmp_path / "bench.md").read_text()
