"""Repositories the bench measures: which deployments a built repository holds, cached demo
builds that are rebuilt when the code or the spec changed, and servers on free ports."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.bench.baselines import BenchError
from tritonize.repository.report import BuildReport, DeploymentEntry, ReportError, read_report
from tritonize.spec import Task

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "bench_fingerprint.txt"


@dataclass(frozen=True, kw_only=True)
class Deployments:
    """The deployments of a built repository the bench measures, named by its build report."""

    classifier: str
    generator: str | None = None
    report: BuildReport

    @classmethod
    def of(cls, repository: Path, classifier: str | None = None) -> Deployments:
        """The first text-classification deployment (or ``classifier``) and the first text2text one.

        Raises:
            BenchError: no readable build report, or no classification deployment in it.
        """
        try:
            report = read_report(repository)
        except ReportError as exc:
            raise BenchError(f"{exc}: build it with `tritonize build`") from exc
        classifiers = report.of_task(Task.TEXT_CLASSIFICATION)
        if classifier is not None and classifier not in classifiers:
            raise BenchError(f"{repository} has no text-classification deployment {classifier!r}; it has {classifiers}")
        if not classifiers:
            raise BenchError(f"{repository} has no text-classification deployment to benchmark")
        generators = report.of_task(Task.TEXT2TEXT_GENERATION)
        return cls(classifier=classifier or classifiers[0], generator=next(iter(generators), None), report=report)

    def entry(self, name: str) -> DeploymentEntry | None:
        """The build report's entry of deployment ``name`` (None when absent)."""
        return self.report.models.get(name)

    def checkpoint(self, name: str) -> str | None:
        entry = self.entry(name)
        return entry.checkpoint if entry else None


def bench_models(spec: Any, classifier: str | None = None) -> list[str]:
    """What the bench builds from a spec: ``classifier`` (default: the first text-classification
    deployment), and its smallest T5 (t5-small demo first).

    Raises:
        SpecError: ``classifier`` is not in the spec. BenchError: the spec has no classifier.
    """
    classifiers = [spec.get(classifier).name] if classifier else [m.name for m in spec.models if not m.is_generative]
    generators = sorted((m for m in spec.models if m.is_generative), key=lambda m: m.demo != "t5-small")
    if not classifiers:
        raise BenchError(f"{spec.source} declares no text-classification deployment to benchmark")
    return classifiers[:1] + [m.name for m in generators[:1]]


# Sources that do not shape a built repository: changing them does not rebuild it.
NOT_BUILD_INPUTS = (
    "bench", "commands", "evaluation", "loadtest", "aio_client.py", "client.py", "cli.py", "endpoints.py", "server.py"
)


def fingerprint(spec: Any, demo: str, dynamic_batching: bool) -> str:
    """Hash of the tritonize sources and data files a build reads, plus the spec's deployments and
    the build options: a repository built under another one is stale (code, spec or options changed)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    files = [p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".toml", ".txt", ".tsv")]
    for path in sorted(p for p in files if p.relative_to(package).parts[0] not in NOT_BUILD_INPUTS):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    models = [dataclasses.replace(m, source="") for m in spec.models]  # the facts, not the file they came from
    digest.update(repr((models, demo, dynamic_batching)).encode())
    return digest.hexdigest()


def ensure_repository(out: Path, spec: Any, demo: str, dynamic_batching: bool, rebuild: bool = False) -> Path:
    """Build the demo repository of ``spec`` into ``out``, or reuse it when its fingerprint matches."""
    from tritonize.pipeline import BuildOptions, build

    expected = fingerprint(spec, demo, dynamic_batching)
    stamp = out / FINGERPRINT_FILE
    if not rebuild and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == expected:
        logger.info("reusing %s", out)
        return out
    state = "on" if dynamic_batching else "off"
    names = [m.name for m in spec.models]
    logger.info("building the %s demo repository of %s (dynamic batching %s) into %s", demo, names, state, out)
    stamp.unlink(missing_ok=True)
    build(BuildOptions(spec=spec, out=out, demo=demo, dynamic_batching=dynamic_batching))
    stamp.write_text(expected + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class Endpoints:
    """Where a server answers; ``admin_key`` / ``inference_key`` are sent where the server restricts those APIs."""

    http_url: str
    grpc_url: str
    admin_key: str | None = None
    inference_key: str | None = None
    metrics_url: str | None = None  # Prometheus endpoint (GPU utilisation and memory), where known


@contextmanager
def serving(repository: Path) -> Iterator[Endpoints]:
    """An embedded server on free local ports."""
    from tritonize.server import EmbeddedServer, ServerConfig, free_port

    config = ServerConfig(repository=repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    with EmbeddedServer(config) as server:
        yield Endpoints(
            http_url=server.http_url,
            grpc_url=server.grpc_url,
            admin_key=config.admin_key,
            inference_key=config.client_inference_key,
            metrics_url=server.metrics_url,
        )


def step_statistics(endpoints: Endpoints) -> dict[str, Any]:
    """Every model's cumulative statistics (``ModelStats``), or ``{}`` where the server refuses them."""
    import tritonclient.http as httpclient

    from tritonize.loadtest.metrics import parse_statistics
    from tritonize.server import admin_headers

    headers = admin_headers("http", endpoints.admin_key) if endpoints.admin_key else None
    client = httpclient.InferenceServerClient(endpoints.http_url)
    try:
        return parse_statistics(client.get_inference_statistics(headers=headers))
    except Exception as exc:  # noqa: BLE001 - statistics are extra detail; a refusal costs only them
        logger.info("no server statistics (%s)", exc)
        return {}
    finally:
        client.close()


def statistics_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per step: average rows per execute and compute milliseconds per execute over a row."""
    out = {}
    for name, stats in after.items():
        delta = stats - before[name] if name in before else stats
        if delta.execution_count:
            out[name] = {
                "executions": delta.execution_count,
                "avg_batch": round(delta.avg_batch or 0.0, 2),
                "compute_ms_per_execute": round(delta.compute_infer_ns / delta.execution_count / 1e6, 3),
            }
    return out
