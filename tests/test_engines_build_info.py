"""Build info, cache key and `tritonize engines check`, on hand-written build-info files (no TensorRT)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tritonize.cli import main
from tritonize.engines.build_info import BuildInfo, cache_key, differences, file_sha256
from tritonize.engines.local import GpuInfo
from tritonize.engines.plan import engine_plan
from tritonize.engines.precision import Family
from tritonize.engines.profiles import axis_ranges
from tritonize.errors import EngineBuildError
from tritonize.export.tensors import sequence_classification_graph
from tritonize.repository.classification import classification_configs
from tritonize.repository.triton_config import write_config
from tritonize.spec import Precision, Target, load_spec
from tritonize.tensorrt_facts import same_release

MODEL = load_spec().get("distilbert_emotion")
GRAPH = sequence_classification_graph(6)
PLAN = engine_plan(MODEL, "distilbert_emotion_model", GRAPH, Family.ENCODER, axis_ranges(MODEL, 16))
H200 = GpuInfo("NVIDIA H200", (9, 0))


def _info(onnx_sha: str = "ab" * 32, version: str = "10.11.0.33", cc=(9, 0)) -> BuildInfo:
    return BuildInfo(
        tensorrt_version=version,
        gpu_name="NVIDIA H200",
        compute_capability=cc,
        onnx_sha256=onnx_sha,
        plan=PLAN,
        built_at="2026-11-28T00:00:00+00:00",
        build_seconds=12.5,
        fp32_layers=0,
    )


def test_build_info_round_trips_through_its_file(tmp_path: Path):
    info = _info()
    assert BuildInfo.read(info.write(tmp_path / "build_info.json")) == info


def test_build_info_read_raises_clear_error_when_malformed(tmp_path: Path):
    (tmp_path / "build_info.json").write_text('{"tensorrt_version": "10"}')
    with pytest.raises(EngineBuildError, match="unreadable build info"):
        BuildInfo.read(tmp_path / "build_info.json")


def test_cache_key_changes_with_each_input_and_not_with_build_time():
    base = _info()
    assert dataclasses.replace(base, built_at="later", build_seconds=99.0, gpu_name="other").cache_key == base.cache_key
    assert dataclasses.replace(base, tensorrt_version="10.11.0.99").cache_key == base.cache_key  # same release
    fp32 = dataclasses.replace(PLAN, precision=dataclasses.replace(PLAN.precision, precision=Precision.FP32))
    smaller = engine_plan(MODEL.replace(max_batch_size=8), PLAN.step, GRAPH, Family.ENCODER,
                          axis_ranges(MODEL.replace(max_batch_size=8), 16))
    changed = [
        dataclasses.replace(base, onnx_sha256="cd" * 32),
        dataclasses.replace(base, tensorrt_version="10.12.0.36"),
        dataclasses.replace(base, compute_capability=(8, 0)),
        dataclasses.replace(base, plan=fp32),
        dataclasses.replace(base, plan=smaller),
    ]
    keys = {base.cache_key, *(c.cache_key for c in changed)}
    assert len(keys) == 1 + len(changed)
    assert cache_key(base.onnx_sha256, base.tensorrt_version, base.compute_capability, PLAN) == base.cache_key


def test_differences_name_version_architecture_and_onnx():
    info = _info()
    assert differences(info, "10.11.0.33", H200, info.onnx_sha256) == []
    problems = differences(info, "10.5.0.18", GpuInfo("NVIDIA A10", (8, 6)), "ef" * 32)
    assert len(problems) == 3
    assert "Version tag does not match" in problems[0] and "10.5.0.18" in problems[0]
    assert "compute capability 9.0" in problems[1] and "8.6" in problems[1]
    assert "ONNX beside the engine changed" in problems[2]
    assert differences(info, None, None, None) == [
        "no TensorRT found here (neither the tensorrt package nor libnvinfer)",
        "no NVIDIA GPU found here (NVML)",
    ]
    assert same_release("10.11.0.33", "10.11.0") and not same_release("10.11.0", "10.12.0")


def _gpu_repository(tmp_path: Path, with_engine: bool = True) -> Path:
    repo = tmp_path / "repo"
    for config in classification_configs(MODEL, Target.GPU, 6, 0):
        write_config(config, repo)
    version = repo / "distilbert_emotion_model" / "1"
    (version / "model.onnx").write_bytes(b"an onnx graph")
    if with_engine:
        (version / "model.plan").write_bytes(b"an engine")
        _info(onnx_sha=file_sha256(version / "model.onnx")).write(version / "build_info.json")
    return repo


def test_engines_check_passes_when_build_info_matches_stated_machine(tmp_path: Path, capsys):
    repo = _gpu_repository(tmp_path)
    args = ["engines", "check", "--repository", str(repo), "--tensorrt-version", "10.11.0.33"]
    assert main([*args, "--compute-capability", "9.0"]) == 0
    assert "OK distilbert_emotion_model: TensorRT 10.11.0.33, NVIDIA H200 (cc 9.0), fp16" in capsys.readouterr().out


def test_engines_check_says_exactly_what_differs_when_build_info_mismatches(tmp_path: Path, capsys):
    repo = _gpu_repository(tmp_path)
    args = ["engines", "check", "--repository", str(repo), "--tensorrt-version", "10.5.0.18"]
    assert main([*args, "--compute-capability", "8.0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL distilbert_emotion_model" in out and "Version tag does not match" in out
    assert "built for compute capability 9.0" in out and "0 of 1 engines will load here" in out


def test_engines_check_fails_when_engine_was_never_built(tmp_path: Path, capsys):
    repo = _gpu_repository(tmp_path, with_engine=False)
    assert main(["engines", "check", "--repository", str(repo), "--tensorrt-version", "10.11.0.33",
                 "--compute-capability", "9.0"]) == 1
    assert "no model.plan" in capsys.readouterr().out


def test_engines_check_rejects_repository_without_engine_steps(tmp_path: Path, capsys):
    repo = tmp_path / "repo"
    for config in classification_configs(MODEL, Target.CPU, 6, 0):
        write_config(config, repo)
    assert main(["engines", "check", "--repository", str(repo)]) == 1
    assert "no tensorrt_plan models" in capsys.readouterr().err
