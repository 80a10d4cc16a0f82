"""In-process baselines on the same texts: raw ONNX Runtime (the ceiling), the tokenizer alone,
tokenizer + ONNX Runtime without a server, the Hugging Face pipeline and ``model.generate``.

Raw ONNX Runtime and the tokenizer read the files of the built repository (``model.onnx``,
``tokenizer.json``, the steps' parameters), so they run exactly what the server runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.bench.cpu import measure
from tritonize.bench.rows import Load, Measurement, RowKey, RowPath
from tritonize.errors import TritonizeError
from tritonize.repository.report import DeploymentEntry
from tritonize.spec import Task


class BenchError(TritonizeError, RuntimeError):
    """A benchmark step could not run (missing repository file, failed build)."""


def step_parameters(repository: Path, model_name: str) -> dict[str, str]:
    """The `parameters` of one model of a built repository, as strings (Triton config values are strings)."""
    from tritonize.repository.triton_config import parse_pbtxt

    path = repository / model_name / "config.pbtxt"
    if not path.exists():
        raise BenchError(f"{path} is missing: is {repository} a tritonize repository?")
    proto = parse_pbtxt(path.read_text(encoding="utf-8"))
    return {key: value.string_value for key, value in proto.parameters.items()}


@dataclass(frozen=True)
class ServedFiles:
    """Where a classification deployment keeps its tokenizer and graph (fused or separate steps)."""

    tokenizer_dir: Path
    model_file: Path
    settings: Any  # TokenizerSettings
    threads: int

    @classmethod
    def of(cls, repository: Path, deployment: str) -> ServedFiles:
        from tritonize.backends.onnx_runner import MODEL_FILE
        from tritonize.backends.tokenize_step import TOKENIZER_FILE, TokenizerSettings
        from tritonize.repository.layout import VERSION, StepNames

        names = StepNames(deployment)
        model_params = step_parameters(repository, names.model)
        fused = (repository / names.model / VERSION / TOKENIZER_FILE).exists()
        tokenizer_step = names.model if fused else names.tokenizer
        params = model_params if fused else step_parameters(repository, tokenizer_step)
        return cls(
            tokenizer_dir=repository / tokenizer_step / VERSION,
            model_file=repository / names.model / VERSION / MODEL_FILE,
            settings=TokenizerSettings.from_parameters(params),
            threads=int(model_params.get("intra_op_num_threads", "0") or 0),
        )

    def tokenizer(self) -> Any:
        from tritonize.backends.tokenize_step import load_tokenizer

        return load_tokenizer(str(self.tokenizer_dir), self.settings.max_input_length)

    def session(self) -> Any:
        from tritonize.backends.onnx_runner import make_session

        return make_session(str(self.model_file), self.threads)


def _timed_calls(calls: list[Any]) -> tuple[float, list[float]]:
    """Run each zero-argument call once (after one warm-up call); (seconds, per-call latencies)."""
    calls[0]()
    latencies = []
    start = time.perf_counter()
    for call in calls:
        begun = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begun)
    return time.perf_counter() - start, latencies


def raw_onnxruntime(
    repository: Path, deployment: str, texts: list[str], batches: tuple[int, ...], path: RowPath = RowPath.RAW_ORT
) -> list[Measurement]:
    """The served ``model.onnx`` in-process with the server's session options, pre-tokenized.

    Batch 1 runs each text at its own length (no padding; its p50 is the latency floor);
    larger batches are sorted by length and padded to their longest text: the best policy
    on CPU, i.e. the serving ceiling.
    """
    from tritonize.backends.fused_classifier import pad_ids

    files = ServedFiles.of(repository, deployment)
    session = files.session()
    ids = [encoding.ids for encoding in files.tokenizer().encode_batch(texts, add_special_tokens=True)]
    pad = files.settings.pad_token_id

    def feeds(groups: list[list[list[int]]]) -> list[Any]:
        padded = [pad_ids(group, pad) for group in groups]
        return [lambda f=f: session.run(None, {"input_ids": f[0], "attention_mask": f[1]}) for f in padded]

    batch_one = feeds([[s] for s in ids])
    rows = [measure(RowKey(path=path, load=Load.BATCH, level=1), len(ids), lambda: _timed_calls(batch_one))]
    ordered = sorted(ids, key=len)
    for batch in batches:
        calls = feeds([ordered[i : i + batch] for i in range(0, len(ordered), batch)])
        key = RowKey(path=path, load=Load.BATCH, level=batch, sorted_by_length=True)
        rows.append(measure(key, len(ids), lambda c=calls: _timed_calls(c)[0]))
    return rows


def tokenizer_alone(repository: Path, deployment: str, texts: list[str], batches: tuple[int, ...]) -> list[Measurement]:
    """The deployment's own ``tokenizer.json`` (what the server runs), ``encode_batch`` per call."""
    tokenizer = ServedFiles.of(repository, deployment).tokenizer()
    rows = []
    for batch in batches:
        chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        calls = [lambda c=c: tokenizer.encode_batch(c, add_special_tokens=True) for c in chunks]
        key = RowKey(path=RowPath.TOKENIZER, load=Load.BATCH, level=batch)
        rows.append(measure(key, len(texts), lambda c=calls: _timed_calls(c)[0]))
    return rows


def in_process_pipeline(repository: Path, deployment: str, texts: list[str], batch: int) -> Measurement:
    """Tokenizer + ONNX Runtime + softmax in this process, ``batch`` texts per call (the fused
    step's own functions): the work the server does, without serving it."""
    from tritonize.backends.fused_classifier import classify_texts

    files = ServedFiles.of(repository, deployment)
    tokenizer, session = files.tokenizer(), files.session()
    labels = [str(i) for i in range(session.get_outputs()[0].shape[-1] or 1)]
    chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    calls = [lambda c=c: classify_texts(tokenizer, session, files.settings, labels, c, batch) for c in chunks]
    key = RowKey(path=RowPath.IN_PROCESS, load=Load.BATCH, level=batch)
    return measure(key, len(texts), lambda: _timed_calls(calls)[0])


@dataclass(frozen=True)
class Placement:
    """Where an HF baseline runs: the served torch step's device and precision (like with like),
    or the CPU in FP32 for an ONNX Runtime deployment."""

    device: str = "cpu"
    precision: str = "fp32"

    @classmethod
    def of(cls, entry: DeploymentEntry | None) -> Placement:
        """From a build report entry: its torch runtime's device and the one precision its plans
        share (FP32 when they differ: HF runs a model in one dtype); CPU FP32 without one."""
        runtime = entry.runtime if entry else None
        if runtime is None:
            return cls()
        precisions = runtime.precisions()
        return cls(device=runtime.device, precision=precisions.pop() if len(precisions) == 1 else "fp32")

    def dtype(self) -> Any:
        import torch

        from tritonize.backends.torch_models import DTYPES

        return getattr(torch, DTYPES[self.precision])


def hf_pipeline(
    checkpoint: str, texts: list[str], batches: tuple[int, ...], placement: Placement = Placement()
) -> list[Measurement]:
    """``pipeline("text-classification")`` of the checkpoint the repository was built from, on
    the placement's device and dtype (default: CPU, FP32)."""
    from transformers import pipeline

    pipe = pipeline(Task.TEXT_CLASSIFICATION.value, model=checkpoint, device=placement.device, dtype=placement.dtype())
    pipe(texts[:2], truncation=True)  # warm-up

    def run(batch: int) -> float:
        start = time.perf_counter()
        if batch == 1:
            for text in texts:
                pipe(text, truncation=True)
        else:
            pipe(texts, batch_size=batch, truncation=True)
        return time.perf_counter() - start  # the pipeline's outputs are on the host: the GPU is done

    return [
        measure(RowKey(path=RowPath.HF_PIPELINE, load=Load.BATCH, level=b), len(texts), lambda b=b: run(b))
        for b in batches
    ]


def hf_generate(
    checkpoint: str, texts: list[str], max_new_tokens: int, batches: tuple[int, ...], placement: Placement = Placement()
) -> list[Measurement]:
    """``model.generate`` (greedy, exactly ``max_new_tokens``) of a seq2seq checkpoint, by batch,
    on the placement's device and dtype."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint, dtype=placement.dtype()).eval().to(placement.device)

    @torch.inference_mode()
    def run(batch: int, items: list[str] = texts) -> float:
        start = time.perf_counter()
        for i in range(0, len(items), batch):
            encoded = tokenizer(items[i : i + batch], return_tensors="pt", padding=True, truncation=True).to(placement.device)
            model.generate(**encoded, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False)
        if placement.device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(2, texts[:2])  # warm-up
    return [
        measure(RowKey(path=RowPath.HF_GENERATE, load=Load.BATCH, level=b, generative=True), len(texts), lambda b=b: run(b))
        for b in batches
    ]


def raw_torch(repository: Path, deployment: str, texts: list[str], batches: tuple[int, ...]) -> list[Measurement]:
    """The served torch step's own runner in-process (its checkpoint, plan, buckets and device),
    pre-tokenized, texts sorted by length in chunks of ``batch``: without CUDA graphs, and with
    them where the step runs on CUDA (captured for the chunk's row buckets before timing). The
    ceiling the served PyTorch runtime is measured against.
    """
    from tritonize.backends import torch_models
    from tritonize.engines import torch_runtime as names
    from tritonize.repository.layout import VERSION, StepNames

    files = ServedFiles.of(repository, deployment)
    step = StepNames(deployment).model
    params = step_parameters(repository, step)
    if names.MODEL_CLASS_PARAMETER not in params:
        raise BenchError(f"{deployment} does not run its model in PyTorch (no {names.MODEL_CLASS_PARAMETER} parameter)")
    device = torch_models.torch_device(params[names.DEVICE_PARAMETER])
    plans = torch_models.parse_plans(params[names.PLANS_PARAMETER])
    model = torch_models.prepare_classifier(str(repository / step / VERSION), params[names.MODEL_CLASS_PARAMETER], device, plans)
    ids = sorted((e.ids for e in files.tokenizer().encode_batch(texts, add_special_tokens=True)), key=len)
    modes = [(False, RowPath.RAW_TORCH)]
    if params[names.CUDA_GRAPHS_PARAMETER] == "true":
        modes.append((True, RowPath.RAW_TORCH_GRAPHS))
    rows = []
    for graphs, path in modes:
        for batch in batches:
            runner = torch_models.TorchClassifier(
                model, device, plans[torch_models.CLASSIFIER], files.settings.pad_token_id,
                files.settings.length_buckets, batch, cuda_graphs=graphs,
            )  # fmt: skip
            calls = [lambda c=ids[i : i + batch], r=runner: r.logits(c) for i in range(0, len(ids), batch)]
            key = RowKey(path=path, load=Load.BATCH, level=batch, sorted_by_length=batch > 1)
            rows.append(measure(key, len(ids), lambda c=calls: _timed_calls(c)))
    return rows
