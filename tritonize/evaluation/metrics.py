"""Classification metrics from (gold, predicted) label pairs, in plain Python.

Conventions follow scikit-learn's ``classification_report``: precision of a class nobody
predicted, or recall of a class absent from the gold labels, is 0; macro F1 is the unweighted
mean over the classes that occur in the gold labels or the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """What one head (label, or a T5's generated word) scored on the file."""

    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: gold label, columns: predicted label
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.confusion)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "total": self.total,
            "per_class": {name: vars(m) for name, m in self.per_class.items()},
            "confusion": {"labels": list(self.labels), "matrix": [list(row) for row in self.confusion]},
        }


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def label_order(gold: Sequence[str], predicted: Sequence[str], known: Sequence[str] = ()) -> tuple[str, ...]:
    """``known`` labels first (the deployment's order), then others as they first appear."""
    return tuple(dict.fromkeys([*known, *gold, *predicted]))


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], known: Sequence[str] = ()) -> Metrics:
    """Raises ValueError when the two sequences differ in length or are empty."""
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"need equally many gold and predicted labels (got {len(gold)} and {len(predicted)})")
    labels = label_order(gold, predicted, known)
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        matrix[index[g]][index[p]] += 1
    per_class: dict[str, ClassMetrics] = {}
    for i, name in enumerate(labels):
        hit, gold_n, predicted_n = matrix[i][i], sum(matrix[i]), sum(row[i] for row in matrix)
        precision, recall = _ratio(hit, predicted_n), _ratio(hit, gold_n)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(precision=precision, recall=recall, f1=f1, support=gold_n)
    present = [name for i, name in enumerate(labels) if sum(matrix[i]) or sum(row[i] for row in matrix)]
    return Metrics(
        labels=labels,
        confusion=tuple(tuple(row) for row in matrix),
        accuracy=sum(matrix[i][i] for i in range(len(labels))) / len(gold),
        macro_f1=sum(per_class[name].f1 for name in present) / len(present),
        per_class=per_class,
    )
