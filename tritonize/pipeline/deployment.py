"""What every task builder shares: where it writes, and what it hands back to the build."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritonize.engines.plan import EnginePlan
from tritonize.pipeline.compile import CompileContext
from tritonize.pipeline.options import BuildOptions
from tritonize.repository.report import (
    AccuracyGate,
    DemoCheckpoint,
    DeploymentEntry,
    EngineEntry,
    T5Decoding,
    TorchRuntime,
    Validation,
)
from tritonize.spec import ModelSpec


@dataclass(frozen=True, kw_only=True)
class Workspace:
    """``workdir`` is scratch for one deployment; ``repository`` the staging repository;
    ``previous`` the live repository (engines there are reused when unchanged)."""

    options: BuildOptions
    workdir: Path
    repository: Path
    previous: Path | None

    def compile_context(self, model: ModelSpec, plans: dict[str, EnginePlan]) -> CompileContext:
        return CompileContext(
            model=model,
            target=self.options.target,
            workdir=self.workdir / "engines",
            plans=plans,
            previous=self.previous,
            timing_cache_dir=self.repository,
            rehearse=self.options.rehearse,
        )


@dataclass(frozen=True, kw_only=True)
class DeploymentBuild:
    """What a task builder produced: the typed parts of the deployment's report entry, the
    ``config.pbtxt`` files it wrote, and the steps whose engines are still to be built where
    TensorRT runs. :meth:`entry` adds what the build knows (task, checkpoints)."""

    labels: tuple[str, ...]
    validation: Validation
    configs: tuple[Path, ...]
    decoding: T5Decoding | None = None
    runtime: TorchRuntime | None = None
    engines: dict[str, EngineEntry] | None = None
    accuracy_gate: AccuracyGate | None = None
    pending: tuple[str, ...] = ()

    def entry(self, model: ModelSpec, checkpoint: str, demo: DemoCheckpoint | None, repository: Path) -> DeploymentEntry:
        """The deployment's report entry; its models are the directories of the configs written."""
        return DeploymentEntry(
            task=model.task,
            seed_checkpoint=model.checkpoint,
            checkpoint=checkpoint,
            demo=demo,
            labels=self.labels,
            validation=self.validation,
            models=tuple(p.parent.name for p in self.configs),
            configs=tuple(str(p.relative_to(repository)) for p in self.configs),
            decoding=self.decoding,
            runtime=self.runtime,
            engines=self.engines or None,
            accuracy_gate=self.accuracy_gate,
        )
