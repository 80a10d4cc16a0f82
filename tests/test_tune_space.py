"""The search space of `tritonize tune` comes from the spec and stays inside what the engine supports;
the Model Analyzer config generated from it is accepted by Model Analyzer's own parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tritonize.deploy import yaml_io
from tritonize.errors import TuneError
from tritonize.repository.triton_config import KIND_CPU, KIND_GPU
from tritonize.spec import ServerSpec, Target, load_spec
from tritonize.tune.analyzer_config import Endpoints, LocalLaunch, Measurement, Paths, RemoteLaunch, analyzer_config
from tritonize.tune.results import split_config_path
from tritonize.tune.space import SearchBounds, SearchMode, powers_of_two_between, search_space

SHIPPED = load_spec()
CLASSIFIER = SHIPPED.get("distilbert_emotion")
UNFUSED = CLASSIFIER.replace(fuse_steps=False, opt_batch_size=8)
BOUNDS = SearchBounds(max_instances=3)


def test_powers_of_two_between_keeps_both_ends_and_the_powers_inside():
    assert powers_of_two_between(32, 256) == (32, 64, 128, 256)
    assert powers_of_two_between(24, 100) == (24, 32, 64, 100)
    assert powers_of_two_between(8, 8) == (8,)
    with pytest.raises(TuneError):
        powers_of_two_between(16, 8)


def test_embedded_fused_space_searches_the_python_keys_never_below_the_engine_batch():
    space = search_space(CLASSIFIER, Target.EMBEDDED, SearchMode.QUICK, server=SHIPPED.server, bounds=BOUNDS)
    (step,) = space.steps
    assert space.profiled == "distilbert_emotion"  # quick mode profiles the ensemble
    assert step.model == "distilbert_emotion_model" and step.kind == KIND_CPU
    assert step.instance_counts == (1, 2, 3)
    assert min(step.max_batch_sizes) == CLASSIFIER.batching.max_batch_size  # the spec rule python_max_batch_size >= max_batch_size
    assert CLASSIFIER.python.python_max_batch_size in step.max_batch_sizes  # the shipped value is inside the space
    assert step.queue_delays_us == (CLASSIFIER.python.python_max_queue_delay_us,)  # quick mode: one value
    assert space.spec_keys == ("python_instances", "python_max_batch_size")


def test_embedded_brute_space_adds_queue_delays_below_the_autoscaler_target():
    server = dataclasses.replace(ServerSpec(), queue_time_target_us=1000)
    space = search_space(CLASSIFIER, Target.EMBEDDED, SearchMode.BRUTE, server=server, bounds=BOUNDS)
    (step,) = space.steps
    assert space.profiled == "distilbert_emotion_model"  # brute mode profiles the batching step itself
    assert 0 in step.queue_delays_us and all(d < 1000 for d in step.queue_delays_us) and len(step.queue_delays_us) > 1
    assert "python_max_queue_delay_us" in space.spec_keys


def test_instance_ceiling_never_drops_below_the_spec():
    space = search_space(CLASSIFIER, Target.EMBEDDED, bounds=SearchBounds(max_instances=1))
    assert space.steps[0].instance_counts == tuple(range(1, CLASSIFIER.python.python_instances + 1))


@pytest.mark.parametrize("target", [Target.GPU, Target.CPU], ids=lambda t: t.value)
def test_engine_batch_sizes_stay_inside_the_profile(target):
    space = search_space(UNFUSED, target, SearchMode.QUICK, bounds=BOUNDS)
    tokenizer, engine, postprocess = space.steps
    assert engine.kind == (KIND_GPU if target is Target.GPU else KIND_CPU)
    assert min(engine.max_batch_sizes) == UNFUSED.profile_opt_batch and max(engine.max_batch_sizes) == UNFUSED.batching.max_batch_size
    assert space.batch_clamp == (UNFUSED.profile_opt_batch, UNFUSED.batching.max_batch_size)  # quick mode's one range
    for fixed in (tokenizer, postprocess):  # the python_* keys are shared: held at the spec's values
        assert fixed.instance_counts == (UNFUSED.python.python_instances,) and fixed.searched == ()
    assert space.spec_keys == ("instances", "max_batch_size")


def test_gpu_brute_preferred_sizes_are_the_profile_opt_and_max():
    space = search_space(UNFUSED, Target.GPU, SearchMode.BRUTE, bounds=BOUNDS)
    (engine,) = space.steps
    assert engine.preferred and all(p[-1] == UNFUSED.batching.max_batch_size and 1 <= p[0] <= UNFUSED.batching.max_batch_size for p in engine.preferred)
    assert "opt_batch_size" in space.spec_keys and "max_queue_delay_us" in space.spec_keys


def test_generative_deployment_and_bad_bounds_are_refused():
    with pytest.raises(TuneError, match="text2text"):
        search_space(SHIPPED.get("t5_small_emotion"), Target.EMBEDDED)
    with pytest.raises(TuneError, match="max-python-batch"):
        search_space(CLASSIFIER, Target.EMBEDDED, bounds=SearchBounds(max_python_batch=CLASSIFIER.batching.max_batch_size - 1))


def test_split_config_path_separates_the_ensemble_from_its_steps():
    assert split_config_path("d_config_2: d_model_config_1, d_tokenizer_config_0") == ("d_config_2", ("d_model_config_1", "d_tokenizer_config_0"))
    assert split_config_path("d_model_config_3") == ("d_model_config_3", ("d_model_config_3",))


# -- the generated config, read by Model Analyzer's own parser -----------------------------------------
model_analyzer = pytest.importorskip("model_analyzer", reason="pip install 'tritonize[tune]' (triton-model-analyzer)")


def _parse(config: dict, tmp_path: Path):
    """Model Analyzer's profile config as its command line builds it from ``-f FILE``."""
    from model_analyzer.cli.cli import CLI
    from model_analyzer.config.input.config_command_profile import ConfigCommandProfile

    path = tmp_path / "ma.yaml"
    yaml_io.write(path, yaml_io.dump(config))
    cli = CLI()
    cli.add_subcommand(cmd="profile", help="profile", config=ConfigCommandProfile())
    return cli.parse(["profile", "-f", str(path)])[1]


def _paths(tmp_path: Path) -> Paths:
    (tmp_path / "repo").mkdir()
    (tmp_path / "out").mkdir()  # run_tune makes it before Model Analyzer reads the config
    return Paths(repository=tmp_path / "repo", out=tmp_path / "out", input_data=tmp_path / "in.json", perf_analyzer=Path("/bin/true"))


ENDPOINTS = Endpoints(http="localhost:8000", grpc="localhost:8001", metrics_url="http://localhost:8002/metrics")


def test_quick_config_is_accepted_by_model_analyzer_with_composing_ranges_and_budget(tmp_path):
    space = search_space(UNFUSED, Target.GPU, SearchMode.QUICK, bounds=BOUNDS)
    launch = RemoteLaunch(endpoints=ENDPOINTS)
    config = _parse(analyzer_config(space, launch, _paths(tmp_path), Measurement(), latency_budget_ms=250), tmp_path)
    assert config.run_config_search_mode == "quick" and config.triton_launch_mode == "remote"
    assert [m.model_name() for m in config.profile_models] == ["distilbert_emotion"]
    composing = {m.model_name(): m for m in config.ensemble_composing_models}
    assert set(composing) == {s.model for s in space.steps}
    assert config.cpu_only_composing_models == ["distilbert_emotion_tokenizer", "distilbert_emotion_postprocess"]
    assert (config.run_config_search_min_model_batch_size, config.run_config_search_max_model_batch_size) == space.batch_clamp
    assert config.constraints == {"perf_latency_p99": {"max": 250}}


def test_brute_config_is_accepted_by_model_analyzer_with_every_list(tmp_path):
    space = search_space(CLASSIFIER, Target.EMBEDDED, SearchMode.BRUTE, server=SHIPPED.server, bounds=BOUNDS)
    launch = LocalLaunch(server_path=Path("/bin/true"), backend_dir=tmp_path, environment={"PATH": "/bin"}, endpoints=ENDPOINTS)
    config = _parse(analyzer_config(space, launch, _paths(tmp_path), Measurement(interval_ms=1000)), tmp_path)
    (profiled,) = config.profile_models
    assert profiled.model_name() == "distilbert_emotion_model" and profiled.cpu_only()
    parameters = profiled.model_config_parameters()
    assert parameters["max_batch_size"] == list(space.steps[0].max_batch_sizes)
    assert config.triton_launch_mode == "local" and config.perf_analyzer_flags["measurement-interval"] == "1000"
