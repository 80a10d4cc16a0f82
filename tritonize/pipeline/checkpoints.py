"""The checkpoint side of a build: which checkpoint, its labels, tokenizer and validation texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tritonize.errors import ExportError, RepositoryError
from tritonize.pipeline.options import BuildOptions
from tritonize.repository.report import DemoCheckpoint
from tritonize.spec import ModelSpec


def resolve_checkpoint(model: ModelSpec, options: BuildOptions) -> tuple[str, DemoCheckpoint | None]:
    """The checkpoint to load: the spec's (hub name or path), or a local demo one."""
    if options.demo is None:
        check_checkpoint(model.checkpoint)
        return model.checkpoint, None
    from tritonize.demo import demo_checkpoint_dir, make_demo_checkpoint, read_marker

    out_dir = demo_checkpoint_dir(options.cache_dir / "demo", model, options.demo, options.train_data)
    path = make_demo_checkpoint(model, options.demo, out_dir, train_data=options.train_data)
    train = (read_marker(path) or {}).get("train_data")
    return str(path), DemoCheckpoint(size=options.demo, architecture=model.demo or "", path=str(path), train_data=train)


def check_checkpoint(checkpoint: str) -> None:
    """Fail early, with one clear message, when a checkpoint cannot be read.

    Raises ExportError naming the checkpoint (a hub name offline, a wrong path).
    """
    load_config(checkpoint)


def load_config(checkpoint: str) -> Any:
    """``AutoConfig.from_pretrained(checkpoint)``. Raises ExportError naming the checkpoint."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot load checkpoint {checkpoint!r}: {first_line} "
            "(no hub access? pass a local path in the spec, or build the demo checkpoints with --demo tiny|full)"
        ) from exc


def resolve_labels(model: ModelSpec, config: Any) -> tuple[str, ...]:
    """Spec labels, else the checkpoint's ``id2label`` in id order."""
    if model.labels:
        return model.labels
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


def validation_texts(options: BuildOptions, model: ModelSpec) -> list[str]:
    """The build's texts, else the built-in corpus that fits the deployment's labels (reviews for
    positive/negative), so profiles' opt lengths and validation see the deployment's kind of text."""
    if options.validation_texts:
        return list(options.validation_texts)
    from tritonize.corpus import builtin_for_labels

    return [e.text for e in builtin_for_labels(model.labels)]
