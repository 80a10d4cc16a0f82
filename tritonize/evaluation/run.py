"""Send a labelled file through a served deployment and score its answers.

Every text goes through the server (never an in-process model), in requests of up to the
deployment's ``max_batch_size`` texts, one at a time, so the latency summary is per request of
that size. A classifier is scored on ``LABEL``; a text2text deployment (T5) on both its
generated word (``GENERATED_TEXT``, exact match after trimming and lower-casing) and its label
scoring (``LABEL``), both from the same request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.errors import TritonizeError
from tritonize.evaluation.metrics import classification_metrics
from tritonize.evaluation.report import build_report, write_report
from tritonize.evaluation.results import Evaluation, Target
from tritonize.urls import without_scheme

LABEL_HEAD = "label"
GENERATED_HEAD = "generated"


class EvaluateError(TritonizeError, ValueError):
    """An evaluation cannot run as asked (bad --compare target, empty dataset)."""


def compare_target(value: str, main: Target) -> Target:
    """``--compare``: a model name on the same server, ``HOST:PORT`` (the same model on another
    server) or ``MODEL@HOST:PORT``.

    Raises:
        EvaluateError: the value is empty or names the main target itself.
    """
    value = value.strip()
    if not value:
        raise EvaluateError("--compare needs a model name, HOST:PORT or MODEL@HOST:PORT")
    if "@" in value:
        model, url = value.split("@", 1)
    elif ":" in value or "/" in value:
        model, url = main.model, without_scheme(value)
    else:
        model, url = value, main.url
    other = Target(model=model, url=url, protocol=main.protocol)
    if other == main:
        raise EvaluateError(f"--compare {value!r} is the evaluated deployment itself")
    return other


def _labels_known(client: Any, model: str) -> list[str]:
    """The deployment's label order from the classification extension (all classes of one answer)."""
    config = client.model_config(model)
    outputs = {o["name"]: o for o in config.get("output", [])}
    dims = outputs.get("PROBABILITIES", {}).get("dims", [])
    if not dims:
        return []
    classes = client.infer_raw(model, ["a"], ["PROBABILITIES"], class_count=int(dims[-1]))["PROBABILITIES"]
    entries = sorted((int(i), label) for _score, i, label in (str(x, "utf-8").split(":", 2) for x in classes[0]))
    return [label for _, label in entries]


def evaluate(target: Target, texts: list[str], gold: list[str], timeout: float = 120.0) -> Evaluation:
    """Score one deployment on ``texts`` against ``gold`` through the server.

    Raises:
        ClientError: the server or the deployment failed a request.
    """
    from tritonize.client import TritonizeClient, decode_text

    with TritonizeClient(target.url, target.protocol, timeout=timeout) as client:
        outputs = [o["name"] for o in client.model_metadata(target.model).get("outputs", [])]
        generative = "GENERATED_TEXT" in outputs
        wanted = ["LABEL", "GENERATED_TEXT"] if generative else ["LABEL"]
        known = _labels_known(client, target.model)
        step = client.max_batch_size(target.model)
        answers: dict[str, list[str]] = {name: [] for name in wanted}
        latencies = []
        start = time.perf_counter()
        for i in range(0, len(texts), step):
            sent = time.perf_counter()
            out = client.infer_raw(target.model, texts[i : i + step], wanted)
            latencies.append(time.perf_counter() - sent)
            for name in wanted:
                answers[name] += [decode_text(x) for x in out[name].reshape(-1)]
        seconds = time.perf_counter() - start
    heads = {LABEL_HEAD: classification_metrics(gold, answers["LABEL"], known)}
    if generative:
        words = [w.strip().lower() for w in answers["GENERATED_TEXT"]]
        heads[GENERATED_HEAD] = classification_metrics([g.lower() for g in gold], words, [k.lower() for k in known])
    return Evaluation(target=target, heads=heads, latencies_s=latencies, texts_per_request=step, seconds=seconds)


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    model: str
    dataset: Path
    protocol: str = "grpc"
    url: str | None = None
    out: Path = Path("artifacts/evaluate")
    compare: str | None = None
    limit: int | None = None  # first N examples only

    def target(self) -> Target:
        from tritonize.client import DEFAULT_URLS, check_protocol

        check_protocol(self.protocol)
        return Target(model=self.model, url=self.url or DEFAULT_URLS[self.protocol], protocol=self.protocol)


def run_evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate (and compare), write ``evaluation.json``, ``evaluation.md`` and PNGs; return the report.

    Raises:
        CorpusError: the dataset is unreadable. EvaluateError: a bad --compare. ClientError: a request failed.
    """
    from tritonize.corpus import load_corpus

    examples = load_corpus(config.dataset)[: config.limit]
    texts, gold = [e.text for e in examples], [e.label for e in examples]
    main = config.target()
    other = compare_target(config.compare, main) if config.compare else None
    results = [evaluate(main, texts, gold)] + ([evaluate(other, texts, gold)] if other else [])
    report = build_report(results, config.dataset)
    write_report(report, results, config.out)
    return report
