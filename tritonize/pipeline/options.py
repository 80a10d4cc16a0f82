"""What one ``tritonize build`` is asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonize.cache import default_cache_dir
from tritonize.demo import SIZES
from tritonize.errors import RepositoryError
from tritonize.spec import Spec, Target

DEMO_SIZES = SIZES  # the demo checkpoint sizes, defined with the demos


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """``spec`` is the whole spec; ``only`` names the deployments to rebuild (empty = all).

    With ``only``, the other deployments of an existing repository at ``out`` are kept and the
    rebuilt ones' entries are merged into its build report.
    """

    spec: Spec
    out: Path
    target: Target = Target.EMBEDDED
    demo: str | None = None
    only: tuple[str, ...] = ()
    dynamic_batching: bool = True
    cache_dir: Path = field(default_factory=default_cache_dir)
    validation_texts: tuple[str, ...] = ()
    train_data: Path | None = None  # demo builds: fine-tune on this labelled file (see tritonize.demo)

    def __post_init__(self) -> None:
        if self.demo is not None and self.demo not in DEMO_SIZES:
            raise RepositoryError(f"--demo must be one of {DEMO_SIZES}, got {self.demo!r}")
        if self.train_data is not None and self.demo is None:
            raise RepositoryError("--train-data fine-tunes the demo checkpoints: use it with --demo tiny|full")
        for name in self.only:
            self.spec.get(name)  # SpecError naming the known deployments

    @property
    def selected(self) -> Spec:
        """The deployments this build rebuilds."""
        return self.spec.select(list(self.only))
