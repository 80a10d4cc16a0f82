"""Local demo checkpoints: the seed architectures, built without the Hugging Face hub.

``make_demo_checkpoint`` writes a directory that ``from_pretrained`` reads exactly like a hub
checkpoint (``config.json``, weights, ``tokenizer.json``), so the export, validation and
serving code has one path for demo and real models. ``full`` uses the seed's real dimensions
(speed is what matters, not weights); ``tiny`` keeps the architecture family at a few MB for
tests. Weights are random with a fixed seed, then briefly fine-tuned on the built-in corpus
so outputs depend on the input (a constant answer would hide wiring mistakes).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from tritonize.errors import SpecError, TritonizeError
from tritonize.spec import ModelSpec

logger = logging.getLogger(__name__)

SIZES = ("tiny", "full")
SEED = 20240611
MARKER = "tritonize_demo.json"
MARKER_VERSION = 3  # bump when a build recipe changes, so cached demo checkpoints are rebuilt
DISTILBERT_DEMOS = ("distilbert",)
T5_DEMOS = ("t5-small", "flan-t5-small", "t5-base")
DEMOS = (*DISTILBERT_DEMOS, *T5_DEMOS)


class DemoError(TritonizeError, ValueError):
    """A demo checkpoint cannot be made as asked (unknown size, unusable labels)."""


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Build demo checkpoints on one intra-op thread. Measured on the shared 2-core machine
    while other jobs ran: a tiny T5 fine-tune took 94 s on two threads and 7 s on one, the
    full t5-small one 264 s against ~30 s (spinning threads lose when cores are busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    """The marker of a demo checkpoint directory, or ``None`` when absent or unreadable."""
    try:
        return json.loads((Path(out_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_marker(out_dir: Path, info: dict[str, Any]) -> None:
    (Path(out_dir) / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def recipe_digest(demo: str) -> str:
    """Hash of what a demo checkpoint is made from: its builder module, the tokenizer trainer and
    the built-in corpora. A cached checkpoint built from other sources is rebuilt."""
    import hashlib

    from tritonize.corpus import DATA_DIR

    here = resources.files("tritonize.demo")
    module = "distilbert.py" if demo in DISTILBERT_DEMOS else "t5.py"
    digest = hashlib.sha256()
    for path in [here / module, here / "tokenizer_training.py", *sorted(DATA_DIR.iterdir(), key=lambda p: p.name)]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _is_cached(out_dir: Path, demo: str, size: str, labels: tuple[str, ...], train: dict[str, Any] | None) -> bool:
    marker = read_marker(out_dir)
    return (
        marker is not None
        and marker.get("version") == MARKER_VERSION
        and marker.get("recipe") == recipe_digest(demo)
        and marker.get("demo") == demo
        and marker.get("size") == size
        and tuple(marker.get("labels", ())) == labels
        and marker.get("train_data") == train
        and (Path(out_dir) / "tokenizer.json").exists()
        and (Path(out_dir) / "config.json").exists()
    )


def demo_labels(model: ModelSpec) -> tuple[str, ...]:
    """The spec's labels, else the seed's own label set for its task."""
    from tritonize.corpus import EMOTION_LABELS

    return tuple(model.labels) or EMOTION_LABELS


def training_examples(labels: tuple[str, ...], train_data: Path | None = None) -> list[tuple[str, str]]:
    """(text, label) pairs: the ``train_data`` file's, else the built-in corpus whose labels best
    match ``labels``.

    Built-in corpus labels that are not in ``labels`` are mapped onto them by position, so any
    label set still gets input-dependent training targets.
    """
    from tritonize.corpus import builtin_for_labels, load_corpus

    if train_data is not None:
        return [(e.text, e.label) for e in load_corpus(train_data)]
    corpus = builtin_for_labels(labels, training=True)
    corpus_labels = list(dict.fromkeys(e.label for e in corpus))
    mapping = {lab: lab if lab in labels else labels[i % len(labels)] for i, lab in enumerate(corpus_labels)}
    return [(e.text, mapping[e.label]) for e in corpus]


def train_data_info(model: ModelSpec, train_data: Path | None) -> dict[str, Any] | None:
    """What a labelled file contributes to ``model``'s demo checkpoint (part of its cache key), or
    ``None`` when it does not apply: its labels must all be labels of the deployment (an emotion
    file trains the emotion models, not a positive/negative one).

    Raises:
        CorpusError: the file is unreadable or malformed.
    """
    if train_data is None:
        return None
    import hashlib

    from tritonize.corpus import load_corpus

    examples = load_corpus(train_data)
    extra = sorted({e.label for e in examples} - set(demo_labels(model)))
    if extra:
        logger.info("%s: not trained on %s (labels %s are not the deployment's)", model.name, train_data, extra[:5])
        return None
    digest = hashlib.sha256(Path(train_data).read_bytes()).hexdigest()[:16]
    return {"path": str(Path(train_data).resolve()), "sha256": digest, "examples": len(examples)}


def demo_checkpoint_dir(root: Path, model: ModelSpec, size: str, train_data: Path | None = None) -> Path:
    """Cache directory of a demo checkpoint: one per architecture, size and training file."""
    info = train_data_info(model, train_data)
    return Path(root) / (f"{model.demo}-{size}" + (f"-train-{info['sha256']}" if info else ""))


def make_demo_checkpoint(model: ModelSpec, size: str, out_dir: Path, train_data: Path | None = None) -> Path:
    """Build (or reuse) the demo checkpoint of ``model.demo`` at ``size`` in ``out_dir``.

    ``train_data`` (a ``text;label`` or TSV file) replaces the built-in corpus for the
    fine-tune when its labels are the deployment's (see :func:`train_data_info`). Reuses
    ``out_dir`` when its marker names the same demo, size, labels and training file.

    Raises:
        SpecError: ``model.demo`` names no known demo architecture.
        DemoError: ``size`` is not one of :data:`SIZES`.
        CorpusError: ``train_data`` is unreadable or malformed.
    """
    if model.demo is None:
        raise SpecError(
            model.source, f"{model.name}.demo", f"names no demo architecture to build with --demo; set one of {list(DEMOS)}"
        )
    if model.demo not in DEMOS:
        raise SpecError(model.source, f"{model.name}.demo", f"must be one of {list(DEMOS)}, got {model.demo!r}")
    if size not in SIZES:
        raise DemoError(f"demo size must be one of {list(SIZES)}, got {size!r}")
    out_dir = Path(out_dir)
    labels = demo_labels(model)
    train = train_data_info(model, train_data)
    file = Path(train["path"]) if train else None
    if _is_cached(out_dir, model.demo, size, labels, train):
        logger.info("reusing demo checkpoint %s (%s, %s)", out_dir, model.demo, size)
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if model.demo in DISTILBERT_DEMOS:
        from tritonize.demo.distilbert import build_distilbert

        with one_torch_thread():
            info = build_distilbert(size, labels, out_dir, seed=SEED, train_data=file)
    else:
        from tritonize.demo.t5 import build_t5

        with one_torch_thread():
            info = build_t5(model.demo, size, labels, out_dir, seed=SEED, train_data=file)
    write_marker(
        out_dir,
        {
            "version": MARKER_VERSION, "demo": model.demo, "size": size, "seed": SEED, "labels": list(labels),
            "train_data": train, "recipe": recipe_digest(model.demo), **info,
        },  # fmt: skip
    )
    logger.info("built demo checkpoint %s (%s, %s)", out_dir, model.demo, size)
    return out_dir
