"""What every task builder shares: where it writes, and what it hands back to the build."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.engines.plan import EnginePlan
from tritonize.pipeline.compile import CompileContext
from tritonize.pipeline.options import BuildOptions
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
    """A built deployment: its report entry, the Triton models (directories) it owns, and the
    steps whose engines are still to be built where TensorRT runs."""

    entry: dict[str, Any]
    models: tuple[str, ...]
    pending: tuple[str, ...] = ()

    @classmethod
    def from_configs(
        cls, entry: dict[str, Any], configs: list[Path], repository: Path, pending: tuple[str, ...]
    ) -> DeploymentBuild:
        models = tuple(p.parent.name for p in configs)
        entry = {**entry, "models": list(models), "configs": [str(p.relative_to(repository)) for p in configs]}
        return cls(entry=entry, models=models, pending=pending)
