"""The build plan of one engine: what a TensorRT build of one model step will do.

A plan is computed without TensorRT (profiles from the declared tensors and the spec, the
precision plan from the architecture), printed by ``tritonize build --plan``, written into the
build report, and is the input of :func:`tritonize.engines.tensorrt_build.build_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tritonize.engines.precision import Family, PrecisionPlan, precision_plan
from tritonize.engines.profiles import AxisRange, TensorProfile, graph_profiles
from tritonize.export.tensors import GraphDecl
from tritonize.spec import ModelSpec, Target


@dataclass(frozen=True, kw_only=True)
class EnginePlan:
    """One engine: its Triton step name, profiles, precision plan and workspace."""

    step: str
    component: str
    family: Family
    profiles: tuple[TensorProfile, ...]
    precision: PrecisionPlan
    workspace_mb: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "component": self.component,
            "family": self.family.value,
            "profiles": [p.to_dict() for p in self.profiles],
            "precision": self.precision.to_dict(),
            "workspace_mb": self.workspace_mb,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnginePlan:
        return cls(
            step=data["step"],
            component=data["component"],
            family=Family(data["family"]),
            profiles=tuple(TensorProfile.from_dict(p) for p in data["profiles"]),
            precision=PrecisionPlan.from_dict(data["precision"]),
            workspace_mb=int(data["workspace_mb"]),
        )

    def with_compute_capability(self, compute_capability: tuple[int, int]) -> EnginePlan:
        """The plan resolved for the GPU at hand (BF16 falls back to FP32 below Ampere)."""
        from dataclasses import replace

        precision = precision_plan(self.family, self.component, self.precision.requested, compute_capability)
        return replace(self, precision=precision)

    def describe(self) -> str:
        """Human-readable lines for ``tritonize build --plan``."""
        p = self.precision
        islands = f", FP32 kept: {', '.join(p.keep_fp32)}" if p.keep_fp32 else ""
        lines = [f"  {self.step}: {p.precision.value} (asked {p.requested.value}){islands} - {p.reason}"]
        lines += [f"    {t.name}: min {list(t.min)} opt {list(t.opt)} max {list(t.max)}" for t in self.profiles]
        return "\n".join(lines)


def engine_plan(
    model: ModelSpec, step: str, graph: GraphDecl, family: Family, ranges: dict[str, AxisRange]
) -> EnginePlan:
    """The plan of one step of ``model`` for the gpu target (GPU not yet known)."""
    return EnginePlan(
        step=step,
        component=graph.component,
        family=family,
        profiles=graph_profiles(graph, ranges),
        precision=precision_plan(family, graph.component, model.engine.precision[Target.GPU]),
        workspace_mb=model.engine.workspace_mb,
    )
