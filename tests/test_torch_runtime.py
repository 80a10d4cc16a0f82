"""The embedded target's PyTorch runtime without a server: spec rules, precision plans, the device
error, the classifier's bucketed runner and the T5 steps against ONNX Runtime and ``generate``.

Runs on PyTorch CPU (FP32, plus BF16 and FP16-with-islands on the CPU where named). The tests
marked ``gpu`` are the ones to run on a GPU machine (``pytest tests/test_torch_runtime.py -m gpu``):
CUDA graphs captured per bucket and equal to eager on padded inputs, FP16 within the spec's
tolerance of the FP32 ONNX export, a throughput figure; they skip here with the reason.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pytest
from conftest_export import DEMO_TASKS, demo_spec, one_thread, scratch_dir, tiny_checkpoint, tiny_t5, tiny_t5_export  # noqa: F401

from tritonize.backends import torch_models
from tritonize.backends.t5_decoding import greedy_decode, label_token_ids, score_labels
from tritonize.corpus import builtin_emotion
from tritonize.errors import EngineBuildError, RuntimeUnavailableError, SpecError
from tritonize.spec import Precision, Runtime, Spec, Target, parse_spec

pytestmark = pytest.mark.usefixtures("one_thread")
TEXTS = [e.text for e in builtin_emotion()]
TINY_BF16_AGREEMENT = 0.9  # flan-t5-small's tiny demo in BF16 (its logits nearly tie; see the BF16 tests)
LONG = ["i feel " + "really " * 60 + "happy today", "word " * 700]  # a long bucket, and truncation


def _runtime_spec(demo: str, runtime: Runtime, precision: Precision = Precision.FP32, **kwargs):
    fused = {"fuse_steps": True} if DEMO_TASKS.get(demo) else {}
    labels = ("sadness", "joy", "love", "anger", "fear", "surprise") if demo not in DEMO_TASKS else ()
    spec = demo_spec(demo, labels, **fused, **kwargs)
    return spec.replace(embedded_runtime=runtime, precision={**spec.engine.precision, Target.EMBEDDED: precision})


# -- spec ----------------------------------------------------------------------------------------


def _parse(extra: str) -> Spec:
    head = '[[model]]\nname = "m"\ncheckpoint = "x"\ntask = "text-classification"\ndemo = "distilbert"\n'
    return parse_spec(head + extra, source="test.toml")


def test_spec_embedded_runtime_parses_with_its_precisions_when_torch() -> None:
    model = _parse('embedded_runtime = "torch-cuda"\nfuse_steps = true\nprecision = { embedded = "fp16" }\n').models[0]
    assert model.engine.embedded_runtime is Runtime.TORCH_CUDA and model.engine.precision[Target.EMBEDDED] is Precision.FP16
    assert _parse("").models[0].engine.embedded_runtime is Runtime.ONNXRUNTIME  # the default stays ONNX Runtime


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ('embedded_runtime = "torch-gpu"', "m.embedded_runtime", "must be one of"),
        ('embedded_runtime = "torch-cpu"\nfuse_steps = true\nprecision = { embedded = "int8" }', "m.precision.embedded",
         "with embedded_runtime torch-cpu"),
        ('precision = { embedded = "fp16" }', "m.precision.embedded", "with embedded_runtime onnxruntime"),
        ('embedded_runtime = "torch-cpu"', "m.fuse_steps", "one fused step"),
        ('instance_gpus = [0]', "m.instance_gpus", "places torch-cuda instances"),
        ('embedded_runtime = "torch-cuda"\nfuse_steps = true\ninstance_gpus = [0, 0]', "m.instance_gpus", "distinct"),
        ('embedded_runtime = "torch-cuda"\nfuse_steps = true\ninstance_gpus = [1]', "m.instance_gpus", "server.gpus = 1"),
    ],
)  # fmt: skip
def test_spec_refuses_runtime_settings_naming_the_field_when_inconsistent(extra: str, field: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        _parse(extra + "\n")
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_spec_places_torch_cuda_instances_on_named_gpus_when_the_server_has_them() -> None:
    spec = _parse('embedded_runtime = "torch-cuda"\nfuse_steps = true\ninstance_gpus = [1, 0]\n[server]\ngpus = 2\n')
    assert spec.models[0].engine.instance_gpus == (1, 0) and spec.server.gpus == 2


# -- plans and the device -------------------------------------------------------------------------


def _t5_plans(precision: str, islands: tuple[str, ...]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The encoder keeps ``islands``; the decoders keep the logits projection FP32 as well."""
    decoder = (precision, (*islands, torch_models.LOGITS_PROJECTION))
    return {"encoder": (precision, islands), "decoder": decoder, "decoder_with_past": decoder}


@pytest.mark.parametrize(
    ("demo", "requested", "expected"),
    [
        ("distilbert", Precision.FP16, {"model": ("fp16", ())}),
        ("t5-small", Precision.FP16, _t5_plans("fp16", ("t5_layer_norm", "residual_add", "index_math"))),
        ("flan-t5-small", Precision.BF16, _t5_plans("bf16", ("t5_layer_norm", "index_math"))),
        ("t5-small", Precision.FP32, dict.fromkeys(torch_models.T5_COMPONENTS, ("fp32", ()))),
    ],
)
def test_torch_plans_follow_the_engine_precision_rules_when_planned_on_the_cpu(demo, requested, expected) -> None:
    import torch
    from transformers import AutoConfig

    from tritonize.engines.torch_runtime import torch_plans

    config = AutoConfig.from_pretrained(tiny_checkpoint(demo) if demo == "distilbert" else tiny_t5(demo))
    plans = torch_plans(_runtime_spec(demo, Runtime.TORCH_CPU, requested), config, torch.device("cpu"))
    assert {c: (p.precision.value, tuple(p.keep_fp32)) for c, p in plans.items()} == expected


def test_torch_plans_refuse_fp16_for_flan_t5_naming_the_deployment() -> None:
    import torch
    from transformers import AutoConfig

    from tritonize.engines.torch_runtime import torch_plans

    model = _runtime_spec("flan-t5-small", Runtime.TORCH_CPU, Precision.FP16)
    with pytest.raises(EngineBuildError, match=rf"{model.name} \(embedded_runtime torch-cpu\).*bf16 or fp32"):
        torch_plans(model, AutoConfig.from_pretrained(tiny_t5("flan-t5-small")), torch.device("cpu"))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_require_device_raises_one_typed_line_naming_torch_when_cuda_is_absent() -> None:
    import torch

    from tritonize.engines.torch_runtime import require_device

    if _cuda_available():
        pytest.skip("this torch sees a CUDA device")
    with pytest.raises(RuntimeUnavailableError) as caught:
        require_device(Runtime.TORCH_CUDA)
    message = str(caught.value)
    assert "\n" not in message and torch.__version__ in message and "torch-cpu" in message
    assert require_device(Runtime.TORCH_CPU).type == "cpu"


def test_build_refuses_torch_cuda_before_the_export_when_cuda_is_absent(tmp_path: Path, tritonize_cache: Path) -> None:
    from tritonize.pipeline import BuildOptions, build

    if _cuda_available():
        pytest.skip("this torch sees a CUDA device")
    model = _runtime_spec("distilbert", Runtime.TORCH_CUDA, Precision.FP16)
    out = tmp_path / "model_repository"
    with pytest.raises(RuntimeUnavailableError, match="needs CUDA") as caught:
        build(BuildOptions(spec=Spec(models=(model,)), out=out, demo="tiny", cache_dir=tritonize_cache))
    assert "\n" not in str(caught.value)
    assert not out.exists() and not any(tmp_path.glob(".*staging"))  # nothing written, staging removed


# -- the classifier runner ------------------------------------------------------------------------


def test_bucket_groups_hold_each_row_once_within_its_bucket_and_the_row_limit() -> None:
    lengths = [3, 17, 16, 40, 5, 600, 16, 9, 33]
    groups = torch_models.bucket_groups(lengths, (8, 16, 32, 64), max_rows=2)
    rows = sorted(int(r) for _, group in groups for r in group)
    assert rows == list(range(len(lengths)))
    for bucket, group in groups:
        assert len(group) <= 2 and all(min(lengths[r], 64) <= bucket for r in group)
        smaller = [b for b in (8, 16, 32, 64) if b < bucket]
        assert all(lengths[r] > max(smaller, default=0) for r in group)  # the smallest bucket that fits
    assert torch_models.batch_buckets(24) == (1, 2, 4, 8, 16, 24) and torch_models.batch_buckets(1) == (1,)


@pytest.mark.parametrize(("rows", "chunks"), [(1, [1]), (3, [4]), (5, [4, 1]), (33, [32, 1]), (130, [128, 2]), (200, [256])])
def test_row_chunks_pad_a_forward_by_at_most_a_quarter_else_split_it(rows: int, chunks: list[int]) -> None:
    assert torch_models.row_chunks(rows, torch_models.batch_buckets(256)) == chunks


def test_torch_cuda_configs_place_gpu_instances_and_feed_whole_executes_to_the_model() -> None:
    from tritonclient.grpc import model_config_pb2

    from tritonize.repository.classification import classification_configs
    from tritonize.repository.text2text import text2text_configs
    from tritonize.repository.triton_config import parse_pbtxt, to_pbtxt

    params = {"runtime": "torch-cuda", "device": "cuda", "torch_plans": "{}", "torch_model_class": "X", "cuda_graphs": "true"}
    model = _runtime_spec("distilbert", Runtime.TORCH_CUDA).replace(
        instance_gpus=(1, 0), python_instances=3, python_max_batch_size=256
    )
    fused = classification_configs(model, Target.EMBEDDED, 6, 0, True, params)[1]
    proto = parse_pbtxt(to_pbtxt(fused))
    group = model_config_pb2.ModelInstanceGroup
    assert [(g.count, g.kind, list(g.gpus)) for g in proto.instance_group] == [(3, group.KIND_GPU, [1, 0])]
    assert proto.parameters["engine_batch"].string_value == "256" and proto.parameters["runtime"].string_value == "torch-cuda"
    on_cpu_model = model.replace(embedded_runtime=Runtime.TORCH_CPU, instance_gpus=())
    on_cpu = classification_configs(on_cpu_model, Target.EMBEDDED, 6, 0, True, {**params, "device": "cpu"})[1]
    assert (on_cpu.instance_kind, on_cpu.parameters["engine_batch"]) == ("KIND_CPU", str(model.batching.max_batch_size))
    t5 = _runtime_spec("t5-small", Runtime.TORCH_CUDA)
    (entry,) = text2text_configs(t5, Target.EMBEDDED, {}, {"pad_token_id": "0"}, 6, True, params)
    assert entry.name == t5.name and entry.instance_kind == "KIND_GPU" and "encoder_model" not in entry.parameters


@functools.cache
def _classifier_files() -> tuple[Path, Path, list[list[int]], int]:
    """The tiny classifier's checkpoint saved as the build saves it, its FP32 ONNX export, token ids."""
    from transformers import AutoTokenizer

    from tritonize.engines.torch_runtime import MODEL_CLASSES, save_checkpoint
    from tritonize.export.onnx_export import export_classifier
    from tritonize.spec import Task

    checkpoint = tiny_checkpoint("distilbert")
    saved = scratch_dir("torch-classifier")
    save_checkpoint(str(checkpoint), MODEL_CLASSES[Task.TEXT_CLASSIFICATION], saved)
    onnx_path = scratch_dir("torch-classifier-onnx") / "model.onnx"
    export_classifier(checkpoint, onnx_path)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    ids = tokenizer(TEXTS + LONG, truncation=True, max_length=512)["input_ids"]
    return saved, onnx_path, ids, int(tokenizer.pad_token_id or 0)


def _onnx_logits(onnx_path: Path, ids: list[list[int]], pad: int) -> np.ndarray:
    import onnxruntime as ort

    from tritonize.backends.fused_classifier import run_logits

    return run_logits(ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]), ids, pad, 8)


def _classifier(saved: Path, plan: str, pad: int, max_rows: int = 8) -> torch_models.TorchClassifier:
    import torch

    plans = {torch_models.CLASSIFIER: torch_models.ComponentPlan(plan)}
    return torch_models.load_classifier(
        str(saved), "AutoModelForSequenceClassification", torch.device("cpu"), plans,
        pad_token_id=pad, length_buckets=(16, 32, 64, 128, 256, 512), max_rows=max_rows,
    )  # fmt: skip


def test_torch_classifier_matches_onnx_runtime_when_groups_are_padded_to_row_and_length_buckets() -> None:
    saved, onnx_path, ids, pad = _classifier_files()
    classifier = _classifier(saved, "fp32", pad, max_rows=8)
    ours, reference = classifier.logits(ids), _onnx_logits(onnx_path, ids, pad)
    assert ours.shape == reference.shape == (len(ids), classifier.num_labels) and ours.dtype == np.float32
    assert float(np.abs(ours - reference).max()) < demo_spec("distilbert").gate.tolerance
    assert len(set(ours.argmax(1).tolist())) >= 2  # outputs depend on the input
    # one row alone (a batch bucket of 1) and a group of 3 padded to 4 rows give the same logits
    assert np.allclose(classifier.logits(ids[:1]), ours[:1], atol=1e-5)
    assert np.allclose(classifier.logits(ids[5:8]), ours[5:8], atol=1e-5)
    assert classifier.logits([]).shape == (0, classifier.num_labels)
    assert classifier.graphs_captured == 0  # no CUDA graphs on the CPU


def test_torch_classifier_in_bf16_on_the_cpu_stays_within_the_bf16_tolerance_of_fp32_onnx() -> None:
    """Reduced precision on the CPU: the whole model cast to BF16 (the flan-T5 plan's kind)."""
    saved, onnx_path, ids, pad = _classifier_files()
    ours, reference = _classifier(saved, "bf16", pad).logits(ids), _onnx_logits(onnx_path, ids, pad)
    spec = demo_spec("distilbert")
    assert float(np.abs(ours - reference).max()) < spec.gate.engine_tolerance[Precision.BF16]
    assert float(np.mean(ours.argmax(1) == reference.argmax(1))) >= spec.gate.min_agreement - 0.05


# -- T5 ------------------------------------------------------------------------------------------


@functools.cache
def _t5_saved(demo: str) -> Path:
    from tritonize.engines.torch_runtime import MODEL_CLASSES, save_checkpoint
    from tritonize.spec import Task

    saved = scratch_dir(f"torch-{demo}")
    save_checkpoint(str(tiny_t5(demo)), MODEL_CLASSES[Task.TEXT2TEXT_GENERATION], saved)
    return saved


def _t5_steps(demo: str, plan: dict[str, torch_models.ComponentPlan] | None = None, device: str = "cpu"):
    import torch

    plans = plan or dict.fromkeys(torch_models.T5_COMPONENTS, torch_models.ComponentPlan("fp32"))
    return torch_models.load_t5_steps(str(_t5_saved(demo)), "AutoModelForSeq2SeqLM", torch.device(device), plans)


def _encoded(demo: str, texts: list[str]):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5(demo))
    return tokenizer, tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="np")


def _strip_pads(tokens: list[int], pad: int = 0) -> list[int]:
    """generate pads rows that stopped early; the decoding loop drops them from the batch instead."""
    tokens = list(tokens)
    while tokens and tokens[-1] == pad:
        tokens.pop()
    return tokens


@pytest.mark.parametrize("demo", ["t5-small", "flan-t5-small"])
def test_t5_torch_steps_decode_token_exact_with_onnx_and_generate_when_on_the_cpu(demo: str) -> None:
    import torch

    from tritonize.export.t5_torch import load_seq2seq
    from tritonize.export.t5_validate import ort_runners

    steps, ort = _t5_steps(demo), ort_runners(tiny_t5_export(demo))
    tokenizer, enc = _encoded(demo, TEXTS[:48])
    config = load_seq2seq(tiny_t5(demo)).config
    args = (8, 2, config.decoder_start_token_id, config.num_decoder_layers)  # eos 2: never, so all 8 tokens count
    hidden = steps["encoder"]({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, ["last_hidden_state"])
    assert isinstance(hidden["last_hidden_state"], torch.Tensor)  # stays a tensor: the device path
    ours = greedy_decode(steps["decoder"], steps["decoder_with_past"], hidden["last_hidden_state"], enc["attention_mask"], *args)
    ort_hidden = ort["encoder"]({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    theirs = greedy_decode(
        lambda i, o: ort["decoder"](i), lambda i, o: ort["decoder_with_past"](i), ort_hidden["last_hidden_state"],
        enc["attention_mask"], *args,
    )  # fmt: skip
    assert ours == theirs and len({tuple(t) for t in ours}) >= 2
    model = load_seq2seq(tiny_t5(demo))
    with torch.no_grad():
        generated = model.generate(
            input_ids=torch.from_numpy(enc["input_ids"]), attention_mask=torch.from_numpy(enc["attention_mask"]),
            max_new_tokens=8, do_sample=False, num_beams=1, eos_token_id=2,
        )  # fmt: skip
    assert [_strip_pads(t) for t in ours] == [_strip_pads(row[1:]) for row in generated.tolist()]
    label_ids = label_token_ids(tokenizer.backend_tokenizer, list(_runtime_spec(demo, Runtime.TORCH_CPU).labels))
    probs = score_labels(steps["decoder"], hidden["last_hidden_state"], enc["attention_mask"], label_ids, 0, 0)
    ort_probs = score_labels(lambda i, o: ort["decoder"](i), ort_hidden["last_hidden_state"], enc["attention_mask"], label_ids, 0, 0)
    assert float(np.abs(probs - ort_probs).max()) < 1e-4


def test_t5_fp16_islands_keep_norms_embeddings_and_the_residual_stream_fp32_when_planned() -> None:
    """FP16 with T5's FP32 islands, run on the CPU through autocast: what stays FP32 and what agrees."""
    import torch
    from transformers import AutoConfig

    from tritonize.engines.torch_runtime import step_plans, torch_plans
    from tritonize.engines.validate import Gate, ort_step, validate_t5_steps

    demo = "t5-small"
    model_spec = _runtime_spec(demo, Runtime.TORCH_CPU, Precision.FP16)
    plans = step_plans(torch_plans(model_spec, AutoConfig.from_pretrained(tiny_t5(demo)), torch.device("cpu")))
    steps = _t5_steps(demo, plans)
    model = steps["encoder"].module.model
    head = model.lm_head.head  # the logits projection, kept FP32 and run outside autocast
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert {m.weight.dtype for m in linear if m is not head} == {torch.float16}
    assert head.weight.dtype == model.shared.weight.dtype == torch.float32  # tied to the embedding
    assert {m.weight.dtype for m in model.modules() if type(m).__name__ == "T5LayerNorm"} == {torch.float32}
    stream: list[torch.dtype] = []
    hooks = [b.register_forward_hook(lambda m, i, o: stream.append(o[0].dtype)) for b in model.encoder.block]
    _, enc = _encoded(demo, TEXTS[:8])
    hidden = steps["encoder"]({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, ["last_hidden_state"])
    for hook in hooks:
        hook.remove()
    assert stream and set(stream) == {torch.float32}  # block outputs: the residual stream
    start = np.zeros((len(enc["input_ids"]), 1), dtype=np.int64)
    logits = steps["decoder"]({"input_ids": start, "encoder_attention_mask": enc["attention_mask"],
                               "encoder_hidden_states": hidden["last_hidden_state"]}, ["logits"])["logits"]
    assert logits.dtype == torch.float32 and not torch.equal(logits, logits.half().float())  # FP32's resolution
    export = tiny_t5_export(demo)
    decoding = {"eos_token_id": 1, "decoder_start_token_id": 0, "num_decoder_layers": model.config.num_decoder_layers,
                "pad_token_id": 0}  # fmt: skip
    batches = [{"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}]
    gate = Gate(min_agreement=model_spec.gate.min_agreement, tolerance=model_spec.gate.engine_tolerance[Precision.FP16])
    report = validate_t5_steps(
        "t5 fp16 islands", {c: ort_step(p) for c, p in export.paths.items()},
        {c: torch_models.on_host(s) for c, s in steps.items()}, batches, decoding, [], 4, gate,
    )  # fmt: skip
    assert report["token_agreement"] >= model_spec.gate.min_agreement and report["encoder_max_abs_diff"] > 0


def test_t5_bf16_steps_take_the_gates_fp32_host_arrays_and_agree_with_fp32_onnx() -> None:
    """BF16 (flan-T5's plan) on the CPU, fed as the accuracy gate feeds a candidate: FP32 host
    arrays between steps, where the served loop passes BF16 tensors (this raised a dtype error)."""
    from tritonize.engines.validate import Gate, ort_step, validate_t5_steps

    demo = "flan-t5-small"
    model_spec = _runtime_spec(demo, Runtime.TORCH_CPU, Precision.BF16)
    steps = _t5_steps(demo, dict.fromkeys(torch_models.T5_COMPONENTS, torch_models.ComponentPlan("bf16")))
    tokenizer, enc = _encoded(demo, TEXTS[:32])
    config = steps["encoder"].module.model.config
    decoding = {"eos_token_id": config.eos_token_id, "decoder_start_token_id": config.decoder_start_token_id,
                "num_decoder_layers": config.num_decoder_layers, "pad_token_id": config.pad_token_id}  # fmt: skip
    batches = [{"input_ids": enc["input_ids"][i : i + 16], "attention_mask": enc["attention_mask"][i : i + 16]} for i in (0, 16)]
    # The tiny demo's answers are near-ties: measured here, BF16 flips 2 of 32 first tokens (0.9375),
    # below the spec's min_agreement; the BF16 output tolerance is the spec's.
    gate = Gate(min_agreement=TINY_BF16_AGREEMENT, tolerance=model_spec.gate.engine_tolerance[Precision.BF16])
    report = validate_t5_steps(
        "flan bf16", {c: ort_step(p) for c, p in tiny_t5_export(demo).paths.items()},
        {c: torch_models.on_host(s) for c, s in steps.items()}, batches, decoding,
        label_token_ids(tokenizer.backend_tokenizer, list(model_spec.labels)), model_spec.generation.max_new_tokens, gate,
    )  # fmt: skip
    assert report["encoder_max_abs_diff"] > 1e-3 and report["label_prob_max_diff"] < model_spec.gate.engine_tolerance[Precision.BF16]


def test_t5_step_signatures_are_the_exported_graph_declarations() -> None:
    from transformers import AutoConfig

    from tritonize.export.tensors import T5_COMPONENTS, t5_graphs

    config = AutoConfig.from_pretrained(tiny_t5("t5-small"))
    graphs = t5_graphs(config)
    assert torch_models.T5_COMPONENTS == T5_COMPONENTS
    for component, (inputs, outputs) in torch_models.t5_signatures(config.num_decoder_layers).items():
        assert inputs == tuple(t.name for t in graphs[component].inputs)
        assert outputs == tuple(t.name for t in graphs[component].outputs)


# -- on a GPU ------------------------------------------------------------------------------------


def _gpu_classifier(plan: str, cuda_graphs: bool, max_rows: int = 32) -> torch_models.TorchClassifier:
    import torch

    saved, _, _, pad = _classifier_files()
    plans = {torch_models.CLASSIFIER: torch_models.ComponentPlan(plan)}
    return torch_models.load_classifier(
        str(saved), "AutoModelForSequenceClassification", torch.device("cuda", 0), plans,
        pad_token_id=pad, length_buckets=(16, 32, 64, 128, 256, 512), max_rows=max_rows, cuda_graphs=cuda_graphs,
    )  # fmt: skip


@pytest.mark.gpu
def test_cuda_graphs_are_captured_per_bucket_and_replay_like_eager_on_padded_inputs() -> None:
    _, _, ids, _ = _classifier_files()
    graphs, eager = _gpu_classifier("fp32", True), _gpu_classifier("fp32", False)
    assert graphs.graphs_captured == len(graphs.batch_buckets) * len(graphs.length_buckets) == 36
    assert eager.graphs_captured == 0
    ours, reference = graphs.logits(ids), eager.logits(ids)
    assert float(np.abs(ours - reference).max()) < 1e-3  # same shapes, same kernels up to TF32/launch order
    assert np.allclose(graphs.logits(ids[:3]), ours[:3], atol=1e-3)  # a partly filled bucket, replayed again


@pytest.mark.gpu
def test_fp16_classifier_with_cuda_graphs_passes_the_builds_gate_against_fp32_onnx() -> None:
    from tritonize.backends.fused_classifier import pad_ids
    from tritonize.engines.torch_runtime import gate_step
    from tritonize.engines.validate import Gate, ort_step, validate_classifier_step

    _, onnx_path, ids, pad = _classifier_files()
    spec = demo_spec("distilbert")
    candidate = gate_step(_gpu_classifier("fp16", True))
    batches = [dict(zip(("input_ids", "attention_mask"), pad_ids(ids[i : i + 8], pad))) for i in range(0, len(ids), 8)]
    report = validate_classifier_step(
        "tiny distilbert fp16 + CUDA graphs", ort_step(onnx_path), candidate, batches,
        Gate.of(spec, spec.gate.engine_tolerance[Precision.FP16]),
    )  # fmt: skip
    assert report["max_abs_diff"] > 0  # FP16 ran, not FP32


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("demo", "precision", "new_tokens"),
    # t5-small: the build gate's 4 tokens. flan-t5-small: its answer (1 token), judged against the
    # tiny demo's BF16 agreement measured on the CPU (0.9375 on 32 texts: near-tied logits).
    [("t5-small", "fp16", 4), ("flan-t5-small", "bf16", 1)],
)
def test_t5_on_cuda_in_its_planned_precision_agrees_with_fp32_onnx(demo: str, precision: str, new_tokens: int) -> None:
    import torch
    from transformers import AutoConfig

    from tritonize.engines.torch_runtime import step_plans, torch_plans
    from tritonize.engines.validate import Gate, ort_step, validate_t5_steps

    model_spec = _runtime_spec(demo, Runtime.TORCH_CUDA, Precision(precision))
    plans = torch_plans(model_spec, AutoConfig.from_pretrained(tiny_t5(demo)), torch.device("cuda", 0))
    steps = _t5_steps(demo, step_plans(plans), device="cuda")
    tokenizer, enc = _encoded(demo, TEXTS[:64])
    config = steps["encoder"].module.model.config
    decoding = {"eos_token_id": config.eos_token_id, "decoder_start_token_id": config.decoder_start_token_id,
                "num_decoder_layers": config.num_decoder_layers, "pad_token_id": config.pad_token_id}  # fmt: skip
    batches = [{"input_ids": enc["input_ids"][i : i + 16], "attention_mask": enc["attention_mask"][i : i + 16]} for i in (0, 16, 32, 48)]
    tolerance = max(model_spec.gate.engine_tolerance[p.precision] for p in plans.values())
    label_ids = label_token_ids(tokenizer.backend_tokenizer, list(model_spec.labels))
    report = validate_t5_steps(
        f"{demo} {precision}", {c: ort_step(p) for c, p in tiny_t5_export(demo).paths.items()},
        {c: torch_models.on_host(s) for c, s in steps.items()}, batches, decoding, label_ids, new_tokens,
        Gate(min_agreement=TINY_BF16_AGREEMENT if precision == "bf16" else model_spec.gate.min_agreement, tolerance=tolerance),
    )  # fmt: skip
    assert report["encoder_max_abs_diff"] > 0  # the planned precision ran, not FP32


@pytest.mark.gpu
def test_classifier_throughput_with_and_without_cuda_graphs_is_reported(record_property) -> None:
    """A smoke figure, no bound: the bench measures the real model (scripts/gpu-bench.sh)."""
    import torch

    _, _, ids, _ = _classifier_files()
    work = [ids[i % len(ids)] for i in range(4096)]
    rates = {}
    for graphs in (True, False):
        classifier = _gpu_classifier("fp16", graphs, max_rows=256)
        classifier.logits(work[:256])
        torch.cuda.synchronize()
        start = time.perf_counter()
        classifier.logits(work)
        rates[graphs] = len(work) / (time.perf_counter() - start)
    record_property("tiny classifier seq/s (graphs, eager)", f"{rates[True]:.0f}, {rates[False]:.0f}")
    assert min(rates.values()) > 0
