from pathlib import Path

import pytest

from tritonize.errors import SpecError
from tritonize.spec import Target, Task, load_spec, parse_spec

VALID = """
[[model]]
name = "m"
checkpoint = "some/ckpt"
task = "text-classification"
demo = "distilbert"
"""


def test_load_spec_default_has_distilbert_emotion():
    spec = load_spec()
    model = spec.get("distilbert_emotion")
    assert model.task is Task.TEXT_CLASSIFICATION
    assert model.checkpoint == "bhadresh-savani/distilbert-base-uncased-emotion"
    assert model.length_buckets[-1] >= model.max_input_length


def test_parse_spec_defaults_when_fields_omitted():
    model = parse_spec(VALID).get("m")
    assert model.batching.max_batch_size == 32 and model.engine.precision[Target.GPU].value == "fp16"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('max_batch_size = 0', "m.max_batch_size"),
        ('length_buckets = [64, 32]', "m.length_buckets"),
        ('length_buckets = [16, 32]', "m.length_buckets"),
        ('labels = ["a", "a"]', "m.labels"),
        ('instances = "two"', "m.instances"),
        ('precision = { gpu = "fp8" }', "m.precision.gpu"),
        ('precision = { tpu = "fp16" }', "m.precision.tpu"),
        ('bogus = 1', "m.bogus"),
        ('tolerance = 0.5', "m.tolerance"),
    ],
)
def test_parse_spec_error_names_file_and_field_when_field_is_bad(extra, field):
    with pytest.raises(SpecError) as info:
        parse_spec(VALID + extra + "\n", source="my.toml")
    assert info.value.field == field
    assert str(info.value).startswith("my.toml: field ")


def test_parse_spec_error_when_required_field_missing():
    with pytest.raises(SpecError, match="m.task.*required"):
        parse_spec(VALID.replace('task = "text-classification"\n', ""), source="x.toml")


def test_parse_spec_error_when_duplicate_names():
    with pytest.raises(SpecError, match="duplicate"):
        parse_spec(VALID + VALID)


def test_load_spec_error_names_missing_file(tmp_path: Path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.toml")


def test_bucket_for_picks_smallest_fitting_bucket():
    model = parse_spec(VALID + "length_buckets = [16, 32, 64, 512]\n").get("m")
    assert [model.bucket_for(n) for n in (1, 16, 17, 64, 65, 9999)] == [16, 16, 32, 64, 512, 512]


def test_parse_spec_reads_python_step_fields_when_given():
    model = parse_spec(VALID + "fuse_steps = true\npython_instances = 2\npython_max_batch_size = 64\n").get("m")
    assert (model.python.fuse_steps, model.python.python_instances, model.python_batch) == (True, 2, 64)
    assert parse_spec(VALID).get("m").python_batch == 32  # 0 means max_batch_size


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("fuse_steps = 1", "m.fuse_steps"),
        ("python_instances = 0", "m.python_instances"),
        ("python_max_batch_size = 8", "m.python_max_batch_size"),
        ("python_max_queue_delay_us = -1", "m.python_max_queue_delay_us"),
    ],
)
def test_parse_spec_rejects_bad_python_step_field_naming_it(line, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec(VALID + line + "\n")


def test_model_fields_group_by_section_and_flat_names_still_read_with_a_deprecation_warning():
    model = load_spec().get("distilbert_emotion")
    assert model.batching.max_batch_size == 32 and model.python.python_instances == 2
    with pytest.warns(DeprecationWarning, match="use ModelSpec.batching.max_batch_size"):
        assert model.max_batch_size == 32
    with pytest.raises(AttributeError):
        model.no_such_field  # noqa: B018 - the attribute access is the test


def test_model_replace_routes_flat_keys_and_checks_the_copy():
    model = load_spec().get("distilbert_emotion")
    smaller = model.replace(max_batch_size=8, python_max_batch_size=0, tie_margin=0.02)
    assert (smaller.batching.max_batch_size, smaller.gate.tie_margin, smaller.name) == (8, 0.02, model.name)
    with pytest.raises(SpecError) as info:
        model.replace(max_batch_size=0)
    assert info.value.field == "distilbert_emotion.max_batch_size"
    with pytest.raises(SpecError, match="unknown field"):
        model.replace(bogus=1)


def test_demo_is_optional_and_a_demo_build_without_it_names_the_field(tmp_path):
    from tritonize.demo import make_demo_checkpoint

    model = parse_spec(VALID.replace('demo = "distilbert"\n', ""), source="x.toml").get("m")
    assert model.demo is None
    with pytest.raises(SpecError) as info:
        make_demo_checkpoint(model, "tiny", tmp_path)
    assert info.value.field == "m.demo" and "names no demo architecture" in str(info.value)
