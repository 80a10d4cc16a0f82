"""The build pipeline: staging (a failed build changes nothing), partial rebuilds, the gpu target here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import loopback_config

from tritonize.cli import main
from tritonize.errors import RepositoryError, ValidationError
from tritonize.export.tensors import sequence_classification_graph, t5_graphs
from tritonize.pipeline import BuildOptions, build
from tritonize.repository.triton_config import parse_pbtxt
from tritonize.spec import Target, load_spec, parse_spec

STRICT_SPEC = """
[[model]]
name = "distilbert_emotion"
checkpoint = "bhadresh-savani/distilbert-base-uncased-emotion"
task = "text-classification"
demo = "distilbert"

[[model]]
name = "distilbert_strict"
checkpoint = "bhadresh-savani/distilbert-base-uncased-emotion"
task = "text-classification"
demo = "distilbert"
tolerance = 1e-12  # no export matches PyTorch this closely: validation fails after the export
"""


def _snapshot(repository: Path) -> dict[str, tuple[int, int]]:
    """Every file of a repository with its size and inode (a rewrite or replacement shows);
    the Python stubs' own ``__pycache__`` is left out (the server writes it while it serves)."""
    return {
        str(p.relative_to(repository)): (p.stat().st_size, p.stat().st_ino)
        for p in sorted(repository.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture()
def live_repository(demo_repository: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny demo repository (embedded target)."""
    live = tmp_path / "model_repository"
    shutil.copytree(demo_repository, live)
    return live


@pytest.mark.triton
@pytest.mark.slow
def test_build_failing_half_way_leaves_previous_repository_serving(live_repository: Path, tritonize_cache: Path):
    from tritonize.client import classify
    from tritonize.server import EmbeddedServer

    before = _snapshot(live_repository)
    spec = parse_spec(STRICT_SPEC, source="strict.toml")
    config = loopback_config(live_repository)
    with EmbeddedServer(config, cache_dir=tritonize_cache) as server:
        answer = classify(["i love my friends so much"], url=server.grpc_url)
        with pytest.raises(ValidationError, match="distilbert_strict"):
            build(BuildOptions(spec=spec, out=live_repository, demo="tiny", cache_dir=tritonize_cache))
        assert _snapshot(live_repository) == before
        assert not any(p.name.endswith(".staging") for p in live_repository.parent.iterdir())
        assert classify(["i love my friends so much"], url=server.grpc_url) == answer


@pytest.mark.slow
def test_partial_build_merges_report_and_removes_model_directories_by_exact_name(
    live_repository: Path, tritonize_cache: Path
):
    report_before = json.loads((live_repository / "build_report.json").read_text())
    neighbour = live_repository / "distilbert_emotion_modelx" / "1"  # a name with a rebuilt name as prefix
    neighbour.mkdir(parents=True)
    (neighbour / "keep.txt").write_text("not ours")
    before = _snapshot(live_repository)
    options = BuildOptions(spec=load_spec(), out=live_repository, demo="tiny", cache_dir=tritonize_cache,
                           only=("distilbert_emotion",))
    report = build(options)
    after = _snapshot(live_repository)
    assert set(report.models) == set(report_before["models"])  # all four kept
    for name in ("t5_small_emotion", "flan_t5_small_emotion", "t5_base_imdb"):
        assert report.models[name].to_dict() == report_before["models"][name]
    assert (neighbour / "keep.txt").read_text() == "not ours"
    rebuilt = "distilbert_emotion_model/config.pbtxt"
    assert after[rebuilt][1] != before[rebuilt][1]  # a new file, not the old one rewritten
    untouched = "t5_small_emotion_encoder/config.pbtxt"
    assert after[untouched][0] == before[untouched][0]
    from tritonize.repository.classification import classification_configs

    written = [c.name for c in classification_configs(load_spec().get("distilbert_emotion"), Target.EMBEDDED, 6, 0)]
    assert list(report.models["distilbert_emotion"].models) == written


def test_partial_build_refuses_to_mix_targets(live_repository: Path, tritonize_cache: Path):
    before = _snapshot(live_repository)
    options = BuildOptions(spec=load_spec(), out=live_repository, target=Target.CPU, demo="tiny",
                           cache_dir=tritonize_cache, only=("distilbert_emotion",))
    with pytest.raises(RepositoryError, match="would mix targets"):
        build(options)
    assert _snapshot(live_repository) == before


@pytest.fixture(scope="module")
def gpu_repository(tmp_path_factory: pytest.TempPathFactory, demo_repository: Path) -> tuple[Path, int, str]:
    """`tritonize build --target gpu` here (no TensorRT): distilbert + t5-small, exit code and stderr."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("gpu") / "model_repository"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["build", "--target", "gpu", "--demo", "tiny", "--out", str(out),
                     "--model", "distilbert_emotion", "--model", "t5_small_emotion"])
    return out, code, err.getvalue()


@pytest.mark.slow
def test_gpu_target_build_writes_onnx_configs_and_plans_then_stops_clearly(gpu_repository):
    out, code, err = gpu_repository
    assert code == 1 and "TensorRT is not available here" in err and "docker compose run --rm build" in err
    report = json.loads((out / "build_report.json").read_text())
    assert report["target"] == "gpu"
    for name, steps in {"distilbert_emotion": ["model"],
                        "t5_small_emotion": ["encoder", "decoder", "decoder_with_past"]}.items():
        model = load_spec().get(name)
        engines = report["models"][name]["engines"]
        assert sorted(engines) == sorted(f"{name}_{s}" for s in steps)
        for step, entry in engines.items():
            assert entry["engine"].startswith("pending")
            assert (out / step / "1" / "model.onnx").stat().st_size > 0
            assert not (out / step / "1" / "model.plan").exists()
            for profile in entry["plan"]["profiles"]:
                assert profile["min"][0] == 1 and profile["max"][0] == model.batching.max_batch_size


@pytest.mark.slow
def test_gpu_target_configs_match_declared_tensors_and_other_targets(gpu_repository, demo_repository: Path):
    out, _, _ = gpu_repository
    checkpoint = json.loads((out / "build_report.json").read_text())["models"]["t5_small_emotion"]["checkpoint"]
    from transformers import AutoConfig

    graphs = {"distilbert_emotion_model": sequence_classification_graph(6)}
    graphs.update({f"t5_small_emotion_{c}": g for c, g in t5_graphs(AutoConfig.from_pretrained(checkpoint)).items()})
    for step, graph in graphs.items():
        config = parse_pbtxt((out / step / "config.pbtxt").read_text())
        assert config.platform == "tensorrt_plan" and config.instance_group[0].kind == 1  # KIND_GPU
        declared = [(t.name, t.data_type, t.triton_dims()) for t in (*graph.inputs, *graph.outputs)]
        from tritonclient.grpc import model_config_pb2

        names = model_config_pb2.DataType.Name
        actual = [(t.name, names(t.data_type), list(t.dims)) for t in (*config.input, *config.output)]
        assert actual == declared, step
        preferred = list(config.dynamic_batching.preferred_batch_size)
        assert preferred and all(1 <= b <= config.max_batch_size for b in preferred)
    # The ensemble and postprocess are the cpu target's (the embedded target may fuse its steps).
    from tritonize.repository.classification import classification_configs
    from tritonize.repository.triton_config import to_pbtxt

    cpu = {c.name: parse_pbtxt(to_pbtxt(c)) for c in classification_configs(load_spec().get("distilbert_emotion"),
                                                                           Target.CPU, 6, 0)}
    for same in ("distilbert_emotion", "distilbert_emotion_postprocess"):
        assert parse_pbtxt((out / same / "config.pbtxt").read_text()) == cpu[same], same


def test_build_plan_prints_profiles_and_precision_plans_for_every_deployment(capsys, demo_repository: Path):
    assert main(["build", "--plan", "--demo", "tiny"]) == 0
    out = capsys.readouterr().out
    for model in load_spec().models:
        assert f"{model.name}:" in out
    for step in ("distilbert_emotion_model: fp16", "t5_small_emotion_encoder: fp16", "t5_base_imdb_decoder: fp16",
                 "flan_t5_small_emotion_decoder_with_past: bf16"):
        assert step in out
    assert "FP32 kept: t5_layer_norm, residual_add" in out
    assert "input_ids: min [1, 16] opt [32, " in out and "max [32, 512]" in out
