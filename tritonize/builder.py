"""``tritonize build``: spec -> checkpoints -> ONNX (validated) -> Triton repository + report.

This is the orchestration layer; each stage lives in its own module and this one only
wires them, so a stage can be tested alone. torch is imported only by the export stage.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize import __version__
from tritonize.errors import ExportError, RepositoryError
from tritonize.repository import layout
from tritonize.spec import ModelSpec, Spec, Target, Task

log = logging.getLogger(__name__)

DEMO_SIZES = ("tiny", "full")
BUILD_TARGETS = (Target.EMBEDDED, Target.CPU)  # gpu needs TensorRT engines: see tritonize.engines


def default_cache_dir() -> Path:
    """Where demo checkpoints are cached: $TRITONIZE_CACHE, else $XDG_CACHE_HOME/tritonize."""
    if os.environ.get("TRITONIZE_CACHE"):
        return Path(os.environ["TRITONIZE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tritonize"


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    spec: Spec
    out: Path
    target: Target = Target.EMBEDDED
    demo: str | None = None
    dynamic_batching: bool = True
    cache_dir: Path = field(default_factory=default_cache_dir)
    validation_texts: tuple[str, ...] = ()
    train_data: Path | None = None  # demo builds: fine-tune on this labelled file (see tritonize.demo)

    def __post_init__(self) -> None:
        if self.target not in BUILD_TARGETS:
            raise RepositoryError(
                f"target {self.target.value!r} is not buildable here; choose one of {[t.value for t in BUILD_TARGETS]}"
                " (the gpu target needs TensorRT: see docs in README 'GPU server')"
            )
        if self.demo is not None and self.demo not in DEMO_SIZES:
            raise RepositoryError(f"--demo must be one of {DEMO_SIZES}, got {self.demo!r}")
        if self.train_data is not None and self.demo is None:
            raise RepositoryError("--train-data fine-tunes the demo checkpoints: use it with --demo tiny|full")


def resolve_checkpoint(model: ModelSpec, options: BuildOptions) -> tuple[str, dict[str, Any] | None]:
    """The checkpoint to load: the spec's (hub name or path), or a local demo one."""
    if options.demo is None:
        check_checkpoint(model.checkpoint)
        return model.checkpoint, None
    from tritonize.demo import demo_checkpoint_dir, make_demo_checkpoint, read_marker

    out_dir = demo_checkpoint_dir(options.cache_dir / "demo", model, options.demo, options.train_data)
    path = make_demo_checkpoint(model, options.demo, out_dir, train_data=options.train_data)
    train = (read_marker(path) or {}).get("train_data")
    return str(path), {"size": options.demo, "architecture": model.demo, "path": str(path), "train_data": train}


def check_checkpoint(checkpoint: str) -> None:
    """Fail early, with one clear message, when a checkpoint cannot be read.

    Raises ExportError naming the checkpoint (a hub name offline, a wrong path).
    """
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot load checkpoint {checkpoint!r}: {first_line} "
            "(no hub access? pass a local path in the spec, or build the demo checkpoints with --demo tiny|full)"
        ) from exc


def resolve_labels(model: ModelSpec, checkpoint: str) -> tuple[str, ...]:
    """Spec labels, else the checkpoint's ``id2label`` in id order."""
    if model.labels:
        return model.labels
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint)
    return tuple(config.id2label[i] for i in range(len(config.id2label)))


def save_tokenizer_json(checkpoint: str, workdir: Path) -> tuple[Path, int]:
    """The checkpoint's fast tokenizer as ``tokenizer.json`` (the server needs no transformers)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if not getattr(tokenizer, "is_fast", False):
        raise RepositoryError(f"{checkpoint}: the tokenizer step needs a fast tokenizer (tokenizer.json)")
    tokenizer.save_pretrained(workdir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return workdir / "tokenizer.json", int(pad)


def validation_texts(options: BuildOptions) -> list[str]:
    if options.validation_texts:
        return list(options.validation_texts)
    from tritonize.corpus import builtin_emotion

    return [e.text for e in builtin_emotion()]


def build_classification(model: ModelSpec, options: BuildOptions, workdir: Path) -> dict[str, Any]:
    from tritonize.export.onnx_export import export_classifier
    from tritonize.export.validate import validate_classifier
    from tritonize.repository.classification import ClassificationArtifacts, write_classification

    checkpoint, demo = resolve_checkpoint(model, options)
    labels = resolve_labels(model, checkpoint)
    tokenizer_json, pad_id = save_tokenizer_json(checkpoint, workdir / "tokenizer")
    onnx_path = workdir / layout.ONNX_FILE
    log.info("%s: exporting %s to ONNX", model.name, checkpoint)
    export_classifier(checkpoint, onnx_path)
    log.info("%s: validating ONNX against PyTorch", model.name)
    validation = validate_classifier(checkpoint, onnx_path, validation_texts(options), model.tolerance)
    artifacts = ClassificationArtifacts(labels=labels, pad_token_id=pad_id, tokenizer_json=tokenizer_json, engine=onnx_path)
    configs = write_classification(options.out, model, options.target, artifacts, options.dynamic_batching)
    return {
        "task": model.task.value,
        "seed_checkpoint": model.checkpoint,
        "checkpoint": checkpoint,
        "demo": demo,
        "labels": list(labels),
        "validation": validation,
        "configs": [str(p.relative_to(options.out)) for p in configs],
    }


def build_text2text(model: ModelSpec, options: BuildOptions, workdir: Path) -> dict[str, Any]:
    from tritonize.repository.text2text import build_text2text_deployment

    checkpoint, demo = resolve_checkpoint(model, options)
    entry = build_text2text_deployment(model, checkpoint, options, workdir)
    return {"task": model.task.value, "seed_checkpoint": model.checkpoint, "checkpoint": checkpoint, "demo": demo, **entry}


BUILDERS = {Task.TEXT_CLASSIFICATION: build_classification, Task.TEXT2TEXT_GENERATION: build_text2text}


def build(options: BuildOptions) -> dict[str, Any]:
    """Build every deployment of the spec into ``options.out``; returns (and writes) the report."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars drown the build log
    options.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "tritonize_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": options.spec.source,
        "target": options.target.value,
        "demo": options.demo,
        "dynamic_batching": options.dynamic_batching,
        "models": {},
    }
    for model in options.spec.models:
        for stale in options.out.glob(f"{model.name}*"):
            if stale.is_dir():
                shutil.rmtree(stale)
        with tempfile.TemporaryDirectory(prefix=f"tritonize-{model.name}-") as tmp:
            report["models"][model.name] = BUILDERS[model.task](model, options, Path(tmp))
        log.info("%s: written to %s", model.name, options.out)
    (options.out / layout.REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
