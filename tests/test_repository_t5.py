"""The T5 entry (BLS) config: instance count from the spec, step memory and instance kind from the target."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tritonize.errors import SpecError
from tritonize.export.tensors import t5_graphs
from tritonize.repository.text2text import text2text_configs
from tritonize.repository.triton_config import parse_pbtxt, to_pbtxt
from tritonize.spec import Target, load_spec, parse_spec

MODEL = next(m for m in load_spec().models if m.is_generative)
GRAPHS = t5_graphs(
    SimpleNamespace(model_type="t5", d_model=64, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16, vocab_size=99)
)


@pytest.mark.parametrize("target", list(Target))
def test_text2text_entry_config_takes_instances_from_spec_and_step_memory_from_target(target: Target):
    model = MODEL.replace(generate_instances=3, instances=2)
    entry, *steps = (parse_pbtxt(to_pbtxt(c)) for c in text2text_configs(model, target, GRAPHS, {}, len(MODEL.labels)))
    group = entry.instance_group[0]
    assert entry.name == MODEL.name and entry.backend == "python"
    # gpu: KIND_GPU, so each instance gets its own device (Triton starts the count per GPU); else CPU.
    assert (group.count, group.Kind.Name(group.kind)) == (3, "KIND_GPU" if target is Target.GPU else "KIND_CPU")
    assert entry.parameters["step_memory"].string_value == ("gpu" if target is Target.GPU else "cpu")
    assert [s.instance_group[0].count for s in steps] == [2, 2, 2]  # engine steps keep `instances`


def test_generate_instances_defaults_to_one_on_the_entry_config():
    assert MODEL.batching.generate_instances == 1
    entry = parse_pbtxt(to_pbtxt(text2text_configs(MODEL, Target.EMBEDDED, GRAPHS, {}, 0)[0]))
    assert entry.instance_group[0].count == 1


@pytest.mark.parametrize(("value", "problem"), [("0", "must be >= 1"), ('"two"', "must be of type int")])
def test_parse_spec_rejects_bad_generate_instances(value: str, problem: str):
    text = '[[model]]\nname = "m"\ncheckpoint = "c"\ntask = "text2text-generation"\ndemo = "t5-small"\n'
    with pytest.raises(SpecError, match=problem) as info:
        parse_spec(text + f"generate_instances = {value}\n", source="my.toml")
    assert info.value.field == "m.generate_instances"
    assert parse_spec(text + "generate_instances = 4\n").get("m").batching.generate_instances == 4


@pytest.mark.parametrize(("args", "device"), [
    ({"model_instance_kind": "GPU", "model_instance_device_id": "1"}, 1),
    ({"model_instance_kind": "GPU", "model_instance_device_id": "0"}, 0),
    ({"model_instance_kind": "CPU", "model_instance_device_id": "0"}, 0),
])
def test_t5_entry_instance_takes_the_device_triton_gives_a_kind_gpu_instance(args, device):
    """With two GPUs the second group's instances must not pin their torch work and BLS outputs to GPU 0
    (the device goes to ``step_memory``; the KIND_GPU config above is what makes Triton pass it)."""
    from tritonize.backends.t5_generate import instance_device

    assert instance_device(args) == device
