"""Overload protection in the spec and the generated configs (parsed back into Triton's protobuf)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tritonize.errors import SpecError
from tritonize.export.tensors import t5_graphs
from tritonize.repository.classification import classification_configs
from tritonize.repository.text2text import text2text_configs
from tritonize.repository.triton_config import parse_pbtxt, to_pbtxt
from tritonize.spec import Target, load_spec, parse_spec

VALID = """
[[model]]
name = "m"
checkpoint = "some/ckpt"
task = "text-classification"
demo = "distilbert"
"""
REJECT = 0  # ModelQueuePolicy.TimeoutAction.REJECT


def _t5_config() -> SimpleNamespace:
    return SimpleNamespace(model_type="t5", d_model=32, num_layers=2, num_decoder_layers=2, num_heads=2, d_kv=16, vocab_size=99)


def test_parse_spec_reads_queue_policy_fields_when_given() -> None:
    text = VALID + "max_queue_size = 4\nqueue_timeout_us = 250000\nallow_timeout_override = true\n"
    model = parse_spec(text).get("m")
    assert (model.batching.max_queue_size, model.batching.queue_timeout_us, model.batching.allow_timeout_override) == (4, 250000, True)
    default = parse_spec(VALID).get("m")
    batching = default.batching
    assert (batching.max_queue_size, batching.queue_timeout_us, batching.allow_timeout_override) == (128, 0, False)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("max_queue_size = -1", "must be >= 0"),
        ("queue_timeout_us = -5", "must be >= 0"),
        ('allow_timeout_override = "yes"', "true or false"),
        ("allow_timeout_override = 1", "true or false"),
        ("max_queue_size = true", "type int"),
    ],
)
def test_parse_spec_error_names_queue_field_when_value_is_bad(extra: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse_spec(VALID + extra + "\n", source="my.toml")
    assert info.value.field == "m." + extra.split(" =")[0]


@pytest.mark.parametrize("target", [Target.EMBEDDED, Target.CPU, Target.GPU])
def test_classification_configs_put_queue_policy_on_every_step_but_ensemble_when_batching(target: Target) -> None:
    model = load_spec().get("distilbert_emotion").replace(
        max_queue_size=3, queue_timeout_us=40000, allow_timeout_override=True
    )
    ensemble, *step_configs = [parse_pbtxt(to_pbtxt(c)) for c in classification_configs(model, target, 6, 0)]
    assert not ensemble.HasField("dynamic_batching")
    assert len(step_configs) == (1 if target is Target.EMBEDDED and model.python.fuse_steps else 3)  # fused: one step
    for config in step_configs:
        policy = config.dynamic_batching.default_queue_policy
        assert (policy.max_queue_size, policy.default_timeout_microseconds) == (3, 40000), config.name
        assert policy.allow_timeout_override and policy.timeout_action == REJECT, config.name


def test_text2text_configs_put_queue_policy_on_entry_and_engine_steps_when_batching() -> None:
    model = load_spec().get("t5_small_emotion").replace(max_queue_size=7)
    configs = [parse_pbtxt(to_pbtxt(c)) for c in text2text_configs(model, Target.EMBEDDED, t5_graphs(_t5_config()), {}, 6)]
    assert [c.name for c in configs][0] == "t5_small_emotion" and len(configs) == 4
    assert [c.dynamic_batching.default_queue_policy.max_queue_size for c in configs] == [7, 7, 7, 7]


def test_configs_have_no_queue_policy_when_dynamic_batching_is_off() -> None:
    model = load_spec().get("distilbert_emotion")
    for config in classification_configs(model, Target.EMBEDDED, 6, 0, dynamic_batching=False):
        assert not parse_pbtxt(to_pbtxt(config)).HasField("dynamic_batching")
