"""Generated configs are parsed back into Triton's protobuf and compared, not string-matched."""

import json
from pathlib import Path

import pytest

from tritonize.errors import RepositoryError
from tritonize.repository.artifacts import ClassificationArtifacts, StepFiles
from tritonize.repository.classification import classification_configs, write_classification
from tritonize.repository.triton_config import (
    EnsembleStep,
    TensorConfig,
    TritonModelConfig,
    check_ensemble,
    parse_pbtxt,
    to_pbtxt,
)
from tritonize.spec import Target, load_spec

SHIPPED = load_spec().get("distilbert_emotion")
MODEL = SHIPPED.replace(fuse_steps=False)  # the three-step ensemble every target can run


def _by_name(configs):
    return {c.name: c for c in configs}


@pytest.mark.parametrize("target", [Target.EMBEDDED, Target.CPU, Target.GPU])
def test_classification_configs_only_model_step_differs_between_targets(target):
    base = _by_name(classification_configs(MODEL, Target.EMBEDDED, 6, 0))
    other = _by_name(classification_configs(MODEL, target, 6, 0))
    assert base.keys() == other.keys()
    for name in base:
        if name == "distilbert_emotion_model":
            continue
        a, b = parse_pbtxt(to_pbtxt(base[name])), parse_pbtxt(to_pbtxt(other[name]))
        if name == "distilbert_emotion_tokenizer":  # padding policy follows the target's cost model
            del a.parameters["padding"], b.parameters["padding"]
        assert a == b, name


def test_classification_configs_model_step_backend_per_target():
    backends = {t: _by_name(classification_configs(MODEL, t, 6, 0))["distilbert_emotion_model"] for t in Target}
    assert backends[Target.EMBEDDED].backend == "python"
    assert backends[Target.CPU].backend == "onnxruntime"
    gpu = parse_pbtxt(to_pbtxt(backends[Target.GPU]))
    assert gpu.platform == "tensorrt_plan" and not gpu.backend and gpu.default_model_filename == "model.plan"
    assert gpu.instance_group[0].kind == 1 and gpu.instance_group[0].count == MODEL.batching.instances  # KIND_GPU


def test_ensemble_contract_parsed_back():
    ensemble = parse_pbtxt(to_pbtxt(classification_configs(MODEL, Target.EMBEDDED, 6, 0)[0]))
    assert ensemble.platform == "ensemble" and ensemble.max_batch_size == MODEL.batching.max_batch_size
    assert [(i.name, i.data_type, list(i.dims)) for i in ensemble.input] == [("TEXT", 13, [1])]  # 13 = TYPE_STRING
    outputs = {o.name: (o.data_type, list(o.dims), o.label_filename) for o in ensemble.output}
    assert outputs == {"LABEL": (13, [1], ""), "SCORE": (11, [1], ""), "PROBABILITIES": (11, [6], "labels.txt")}
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "distilbert_emotion_tokenizer",
        "distilbert_emotion_model",
        "distilbert_emotion_postprocess",
    ]


def test_step_configs_carry_spec_facts():
    configs = _by_name(classification_configs(MODEL, Target.EMBEDDED, 6, 0))
    tok = parse_pbtxt(to_pbtxt(configs["distilbert_emotion_tokenizer"]))
    assert tok.parameters["length_buckets"].string_value == ",".join(map(str, MODEL.length_buckets))
    assert tok.parameters["max_input_length"].string_value == str(MODEL.max_input_length)
    model = parse_pbtxt(to_pbtxt(configs["distilbert_emotion_model"]))
    assert model.dynamic_batching.max_queue_delay_microseconds == MODEL.batching.max_queue_delay_us
    assert model.instance_group[0].count == MODEL.batching.instances
    assert all(i.allow_ragged_batch for i in model.input)
    assert not any(i.allow_ragged_batch for i in parse_pbtxt(to_pbtxt(
        _by_name(classification_configs(MODEL, Target.CPU, 6, 0))["distilbert_emotion_model"])).input)


def test_classification_configs_without_dynamic_batching():
    for config in classification_configs(MODEL, Target.EMBEDDED, 6, 0, dynamic_batching=False)[1:]:
        assert not parse_pbtxt(to_pbtxt(config)).HasField("dynamic_batching")


def test_check_ensemble_lists_every_miswiring():
    step = TritonModelConfig(
        name="s", backend="python", max_batch_size=1,
        inputs=(TensorConfig(name="x", data_type="TYPE_FP32", dims=(1,)),),
        outputs=(TensorConfig(name="y", data_type="TYPE_FP32", dims=(1,)),),
    )
    ens = TritonModelConfig(
        name="e", platform="ensemble", max_batch_size=1,
        inputs=(TensorConfig(name="IN", data_type="TYPE_FP32", dims=(1,)),),
        outputs=(TensorConfig(name="OUT", data_type="TYPE_FP32", dims=(1,)),),
        ensemble_steps=(EnsembleStep(model_name="s", input_map={"x": "NOPE"}, output_map={"z": "Q"}),),
    )
    with pytest.raises(RepositoryError) as info:
        check_ensemble(ens, {"s": step})
    message = str(info.value)
    assert "NOPE" in message and "has no output z" in message and "OUT is produced by no step" in message


def test_to_pbtxt_rejects_field_triton_does_not_know():
    config = TritonModelConfig(
        name="x", backend="python", max_batch_size=1, inputs=(), outputs=(),
        instance_kind="KIND_QUANTUM",
    )
    with pytest.raises(RepositoryError, match="ModelConfig"):
        to_pbtxt(config)


def test_write_classification_lays_out_repository(tmp_path: Path):
    tok = tmp_path / "tokenizer.json"
    tok.write_text(json.dumps({"dummy": True}))
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    labels = ("sadness", "joy", "love", "anger", "fear", "surprise")
    repo = tmp_path / "repo"
    from tritonize.export.tensors import sequence_classification_graph

    step = StepFiles(graph=sequence_classification_graph(6), files={"model.onnx": onnx})
    art = ClassificationArtifacts(labels=labels, pad_token_id=0, tokenizer_json=tok, model=step)
    write_classification(repo, MODEL, Target.EMBEDDED, art)
    assert (repo / "distilbert_emotion" / "labels.txt").read_text().split() == list(labels)
    assert (repo / "distilbert_emotion" / "1").is_dir()
    for step, files in {
        "distilbert_emotion_tokenizer": ["model.py", "tritonize_backend_common.py", "tokenizer.json"],
        "distilbert_emotion_model": ["model.py", "model.onnx"],
        "distilbert_emotion_postprocess": ["model.py"],
    }.items():
        for f in files:
            assert (repo / step / "1" / f).exists(), (step, f)
    cpu = tmp_path / "cpu"
    write_classification(cpu, MODEL, Target.CPU, art)
    assert not (cpu / "distilbert_emotion_model" / "1" / "model.py").exists()


def test_tensor_decl_dims_drop_batch_axis():
    from tritonize.export.tensors import sequence_classification_graph

    graph = sequence_classification_graph(6)
    assert [t.triton_dims() for t in graph.inputs] == [[-1], [-1]]
    assert graph.outputs[0].triton_dims() == [6]
    assert graph.dynamic_axes()["input_ids"] == {0: "batch", 1: "sequence"}


def test_fused_configs_keep_contract_when_embedded_fuses_steps():
    fused = _by_name(classification_configs(SHIPPED, Target.EMBEDDED, 6, 0))
    assert SHIPPED.python.fuse_steps and list(fused) == ["distilbert_emotion", "distilbert_emotion_model"]
    ensemble = parse_pbtxt(to_pbtxt(fused["distilbert_emotion"]))
    separate = parse_pbtxt(to_pbtxt(classification_configs(MODEL, Target.EMBEDDED, 6, 0)[0]))
    assert list(ensemble.input) == list(separate.input) and list(ensemble.output) == list(separate.output)
    step = parse_pbtxt(to_pbtxt(fused["distilbert_emotion_model"]))
    assert step.backend == "python" and step.max_batch_size == SHIPPED.python_batch > SHIPPED.batching.max_batch_size
    assert step.dynamic_batching.max_queue_delay_microseconds == SHIPPED.python.python_max_queue_delay_us
    assert step.parameters["engine_batch"].string_value == str(SHIPPED.batching.max_batch_size)
    assert [o.name for o in step.output] == ["LABEL", "SCORE", "PROBABILITIES"]


@pytest.mark.parametrize("target", [Target.CPU, Target.GPU])
def test_fuse_steps_keeps_separate_engine_step_when_target_is_not_embedded(target):
    names = [c.name for c in classification_configs(SHIPPED, target, 6, 0)]
    assert names == [c.name for c in classification_configs(MODEL, target, 6, 0)]
    assert "distilbert_emotion_tokenizer" in names and "distilbert_emotion_postprocess" in names


def test_python_step_fields_reach_tokenizer_and_postprocess_configs():
    model = MODEL.replace(python_instances=3, python_max_batch_size=128, python_max_queue_delay_us=50)
    configs = _by_name(classification_configs(model, Target.GPU, 6, 0))
    for name in ("distilbert_emotion_tokenizer", "distilbert_emotion_postprocess"):
        proto = parse_pbtxt(to_pbtxt(configs[name]))
        assert (proto.instance_group[0].count, proto.max_batch_size) == (3, 128)
        assert proto.dynamic_batching.max_queue_delay_microseconds == 50
    assert parse_pbtxt(to_pbtxt(configs["distilbert_emotion_model"])).max_batch_size == model.batching.max_batch_size


def test_write_classification_lays_out_fused_step_when_embedded_fuses(tmp_path: Path):
    tok = tmp_path / "tokenizer.json"
    tok.write_text(json.dumps({"dummy": True}))
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    labels = ("a", "b", "c", "d", "e", "f")
    from tritonize.export.tensors import sequence_classification_graph

    step_files = StepFiles(graph=sequence_classification_graph(6), files={"model.onnx": onnx})
    art = ClassificationArtifacts(labels=labels, pad_token_id=0, tokenizer_json=tok, model=step_files)
    write_classification(tmp_path / "repo", SHIPPED, Target.EMBEDDED, art)
    step = tmp_path / "repo" / "distilbert_emotion_model"
    for name in ("model.py", "model.onnx", "tokenizer.json", "tritonize_backend_tokenize_step.py",
                 "tritonize_backend_onnx_runner.py", "tritonize_backend_postprocess_step.py"):
        assert (step / "1" / name).exists(), name
    assert (step / "labels.txt").read_text().split() == list(labels)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["distilbert_emotion", "distilbert_emotion_model"]
