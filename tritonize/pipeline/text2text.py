"""Text2text generation (T5): export three graphs -> validate step by step -> compile -> repository."""

from __future__ import annotations

import logging
from pathlib import Path

from tritonize.engines.plan import EnginePlan
from tritonize.engines.torch_runtime import build_torch_step, require_device, t5_steps, uses_torch
from tritonize.engines.validate import Gate, Step
from tritonize.export.tensors import T5_COMPONENTS, t5_graphs
from tritonize.pipeline.checkpoints import load_config, save_tokenizer_json, validation_texts
from tritonize.pipeline.compile import Exported, compile_graphs
from tritonize.pipeline.deployment import DeploymentBuild, Workspace
from tritonize.pipeline.plans import gpu_plans
from tritonize.repository import layout
from tritonize.repository.artifacts import StepFiles, Text2TextArtifacts, TorchStepFiles
from tritonize.repository.report import T5Decoding, Text2TextGate, TorchRuntime, Validation
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
    """Export the three graphs, validate them, compile, validate engines, write the deployment.

    With an embedded torch runtime the entry model runs the checkpoint in PyTorch instead of
    engine steps, gated against the FP32 ONNX graphs through the same decoding loop.
    """
    from tritonize.export.t5 import export_t5
    from tritonize.export.t5_validate import validate_t5

    options = ws.options
    torch_runtime = uses_torch(model, options.target)
    if torch_runtime:
        require_device(model.engine.embedded_runtime)  # before the export: no CUDA is known at once
    texts = validation_texts(options, model)
    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, ws.workdir / "tokenizer")
    exported = export_t5(checkpoint, ws.workdir / "onnx")
    validation = Validation.from_dict(validate_t5(checkpoint, exported, texts, model.gate.tolerance, name=model.name), model.name)
    decoding = T5Decoding(
        pad_token_id=pad_id,
        eos_token_id=exported.eos_token_id,
        decoder_start_token_id=exported.decoder_start_token_id,
        num_decoder_layers=exported.num_decoder_layers,
    )
    names = layout.StepNames(model.name)
    graphs = {
        c: Exported(step=names.component(c), graph=exported.graphs[c], onnx=exported.paths[c]) for c in T5_COMPONENTS
    }
    onnx = {c: g.onnx for c, g in graphs.items()}
    gate_inputs = (model, onnx, tokenizer_json, decoding, texts)
    parameters = decoding.parameters()  # Triton config parameters are strings
    if torch_runtime:
        built = build_torch_step(model, checkpoint, load_config(checkpoint), ws.workdir / "torch")
        gate = _gate(built.label(model), t5_steps(built, model), built.gate(model), *gate_inputs)
        torch_files = TorchStepFiles(files=built.files, parameters=built.parameters)
        steps = {c: StepFiles(graph=g.graph) for c, g in graphs.items()}
        artifacts = Text2TextArtifacts(
            labels=model.labels, tokenizer_json=tokenizer_json, steps=steps, parameters=parameters, torch=torch_files
        )
        configs = write_text2text(ws.repository, model, options.target, artifacts, options.dynamic_batching)
        return DeploymentBuild(
            labels=tuple(model.labels), validation=validation, configs=tuple(configs), decoding=decoding,
            runtime=TorchRuntime.from_dict(built.report(), model.name), accuracy_gate=gate,
        )
    plans = plan_text2text(model, checkpoint, texts) if options.target is Target.GPU else {}
    compiled = compile_graphs(ws.compile_context(model, plans), graphs)
    gate = None
    if compiled.candidates:
        label = f"{model.name} ({model.engine.precision[options.target].value})"
        with compiled.candidate_steps() as candidates:
            figures = _gate(label, candidates, compiled.gate(model), *gate_inputs)
        gate = compiled.gate_entry(figures)
    artifacts = Text2TextArtifacts(
        labels=model.labels, tokenizer_json=tokenizer_json, steps=compiled.steps, parameters=parameters
    )
    configs = write_text2text(ws.repository, model, options.target, artifacts, options.dynamic_batching)
    return DeploymentBuild(
        labels=tuple(model.labels), validation=validation, configs=tuple(configs), decoding=decoding,
        engines=compiled.engines, accuracy_gate=gate, pending=compiled.pending,
    )


def _gate(
    name: str,
    candidates: dict[str, Step],
    gate: Gate,
    model: ModelSpec,
    onnx: dict[str, Path],
    tokenizer_json: Path,
    decoding: T5Decoding,
    texts: list[str],
) -> Text2TextGate:
    """The compiled steps (engines, INT8 graphs or PyTorch) against the FP32 ONNX graphs, through the decoding loop."""
    from tritonize.backends.t5_decoding import label_token_ids
    from tritonize.backends.tokenize_step import load_tokenizer
    from tritonize.engines.validate import ort_step, token_batches, validate_t5_steps

    log.info("%s: accuracy gate of the compiled steps against the FP32 ONNX graphs", name)
    tokenizer = load_tokenizer(str(tokenizer_json.parent), model.max_input_length)
    figures = validate_t5_steps(
        name,
        {c: ort_step(path) for c, path in onnx.items()},
        candidates,
        token_batches(tokenizer_json, model, decoding.pad_token_id, texts),
        decoding.ids(),
        label_token_ids(tokenizer, model.labels) if model.labels else [],
        max(model.generation.max_new_tokens, GATE_NEW_TOKENS),
        gate,
    )
    return Text2TextGate.from_dict(figures, name)
