"""Small, valid build reports for tests that only need a repository's deployments."""

from __future__ import annotations

from pathlib import Path

from tritonize.repository.report import BuildReport, DeploymentEntry, Validation, write_report
from tritonize.spec import Target, Task


def entry(task: Task, checkpoint: str = "ckpt") -> DeploymentEntry:
    return DeploymentEntry(
        task=task,
        seed_checkpoint=checkpoint,
        checkpoint=checkpoint,
        labels=("a", "b"),
        validation=Validation(max_abs_diff=0.0, num_texts=1, num_batches=1, tolerance=1e-3, graph="model.onnx"),
        models=(),
        configs=(),
    )


def report(tasks: dict[str, Task], target: Target = Target.EMBEDDED) -> BuildReport:
    """A report of deployments ``tasks`` (name -> task)."""
    models = {name: entry(task) for name, task in tasks.items()}
    return BuildReport.create(spec="<spec>", target=target, dynamic_batching=True, models=models)


def write(repository: Path, tasks: dict[str, Task], target: Target = Target.EMBEDDED) -> BuildReport:
    repository.mkdir(parents=True, exist_ok=True)
    built = report(tasks, target)
    write_report(repository, built)
    return built
