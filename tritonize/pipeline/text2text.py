"""Text2text generation (T5): export three graphs -> validate step by step -> compile -> repository."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tritonize.engines.plan import EnginePlan
from tritonize.export.tensors import T5_COMPONENTS, t5_graphs
from tritonize.pipeline.checkpoints import load_config, save_tokenizer_json, validation_texts
from tritonize.pipeline.compile import Compiled, Exported, compile_graphs
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.plans import gpu_plans
from tritonize.repository import layout
from tritonize.repository.artifacts import Text2TextArtifacts
from tritonize.repository.text2text import write_text2text
from tritonize.spec import ModelSpec, Target

log = logging.getLogger(__name__)

GATE_NEW_TOKENS = 4  # decode past the spec's 1-2 tokens so the gate checks decoder_with_past too


def plan_text2text(model: ModelSpec, checkpoint: str, texts: list[str]) -> dict[str, EnginePlan]:
    from transformers import AutoTokenizer

    config = load_config(checkpoint)
    names = layout.StepNames(model.name)
    graphs = {names.component(c): g for c, g in t5_graphs(config).items()}
    return gpu_plans(model, config, graphs, AutoTokenizer.from_pretrained(checkpoint), texts, model.labels)


def build_text2text(model: ModelSpec, checkpoint: str, ws: Workspace) -> DeploymentBuild:
    """Export the three graphs, validate them, compile, validate engines, write the deployment."""
    from tritonize.export.t5 import export_t5
    from tritonize.export.t5_validate import validate_t5

    options = ws.options
    texts = validation_texts(options, model)
    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, ws.workdir / "tokenizer")
    exported = export_t5(checkpoint, ws.workdir / "onnx")
    validation = validate_t5(checkpoint, exported, texts, model.tolerance, name=model.name)
    parameters = {
        "pad_token_id": str(pad_id),
        "eos_token_id": str(exported.eos_token_id),
        "decoder_start_token_id": str(exported.decoder_start_token_id),
        "num_decoder_layers": str(exported.num_decoder_layers),
    }
    names = layout.StepNames(model.name)
    graphs = {
        c: Exported(step=names.component(c), graph=exported.graphs[c], onnx=exported.paths[c]) for c in T5_COMPONENTS
    }
    plans = plan_text2text(model, checkpoint, texts) if options.target is Target.GPU else {}
    compiled = compile_graphs(ws.compile_context(model, plans), graphs)
    entry: dict[str, Any] = {"labels": list(model.labels), "validation": validation}
    if compiled.report:
        entry["engines"] = compiled.report
    if compiled.candidates:
        onnx = {c: g.onnx for c, g in graphs.items()}
        entry["accuracy_gate"] = _gate(model, options.target, onnx, compiled, tokenizer_json, parameters, texts)
    artifacts = Text2TextArtifacts(
        labels=model.labels, tokenizer_json=tokenizer_json, steps=compiled.steps, parameters=parameters
    )
    configs = write_text2text(ws.repository, model, options.target, artifacts, options.dynamic_batching)
    return DeploymentBuild.from_configs(entry, configs, ws.repository, compiled.pending)


def _gate(
    model: ModelSpec,
    target: Target,
    onnx: dict[str, Path],
    compiled: Compiled,
    tokenizer_json: Path,
    parameters: dict[str, str],
    texts: list[str],
) -> dict[str, Any]:
    """The compiled graphs (engines or INT8) against the FP32 ONNX graphs, through the decoding loop."""
    from tritonize.backends.t5_decoding import label_token_ids
    from tritonize.backends.tokenize_step import load_tokenizer
    from tritonize.engines.validate import ort_step, token_batches, validate_t5_steps

    log.info("%s: accuracy gate of the compiled steps against the FP32 ONNX graphs", model.name)
    decoding = {k: int(v) for k, v in parameters.items()}
    tokenizer = load_tokenizer(str(tokenizer_json.parent), model.max_input_length)
    return validate_t5_steps(
        f"{model.name} ({model.precision[target].value})",
        {c: ort_step(path) for c, path in onnx.items()},
        compiled.candidate_steps(),
        token_batches(tokenizer_json, model, decoding["pad_token_id"], texts),
        decoding,
        label_token_ids(tokenizer, model.labels) if model.labels else [],
        max(model.max_new_tokens, GATE_NEW_TOKENS),
        compiled.gate(model),
    )
