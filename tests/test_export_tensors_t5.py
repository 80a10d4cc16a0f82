"""T5 graph declarations: names generated from the layer count, sizes from the config."""

from __future__ import annotations

from types import SimpleNamespace

from tritonize.export.tensors import (
    BATCH,
    ENCODER_SEQUENCE,
    PAST_DECODER_SEQUENCE,
    T5_DECODER,
    T5_DECODER_WITH_PAST,
    T5_ENCODER,
    t5_graphs,
)


def _config(layers: int = 6, decoder_layers: int = 3, heads: int = 6, d_kv: int = 64, d_model: int = 512):
    return SimpleNamespace(
        model_type="t5",
        d_model=d_model,
        num_layers=layers,
        num_decoder_layers=decoder_layers,
        num_heads=heads,
        d_kv=d_kv,
        vocab_size=99,
    )


def test_t5_graphs_generate_kv_names_from_decoder_layer_count():
    graphs = t5_graphs(_config(decoder_layers=3))
    decoder_outputs = [t.name for t in graphs[T5_DECODER].outputs]
    assert decoder_outputs[0] == "logits"
    assert len(decoder_outputs) == 1 + 3 * 4
    assert decoder_outputs[1:5] == [
        "present.0.decoder.key",
        "present.0.decoder.value",
        "present.0.encoder.key",
        "present.0.encoder.value",
    ]
    past_inputs = [t.name for t in graphs[T5_DECODER_WITH_PAST].inputs]
    assert past_inputs[:2] == ["input_ids", "encoder_attention_mask"]
    assert past_inputs[-1] == "past_key_values.2.encoder.value"
    past_outputs = [t.name for t in graphs[T5_DECODER_WITH_PAST].outputs]
    assert past_outputs == ["logits"] + [f"present.{i}.decoder.{p}" for i in range(3) for p in ("key", "value")]


def test_t5_graphs_take_sizes_from_config_not_literals():
    graphs = t5_graphs(_config(heads=6, d_kv=64, d_model=512))
    encoder_out = graphs[T5_ENCODER].outputs[0]
    assert encoder_out.axes == (BATCH, ENCODER_SEQUENCE, 512)
    past = {t.name: t for t in graphs[T5_DECODER_WITH_PAST].inputs}
    assert past["past_key_values.0.decoder.key"].axes == (BATCH, 6, PAST_DECODER_SEQUENCE, 64)
    assert past["past_key_values.0.encoder.key"].axes == (BATCH, 6, ENCODER_SEQUENCE, 64)
    assert graphs[T5_DECODER_WITH_PAST].outputs[0].triton_dims() == [1, 99]
    assert graphs[T5_DECODER_WITH_PAST].dynamic_axes()["input_ids"] == {0: BATCH}
