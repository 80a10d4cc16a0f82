"""`tritonize evaluate`: metrics checked by hand, and a served evaluation against an independent count."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tritonize.evaluation.metrics import classification_metrics
from tritonize.evaluation.run import EvaluateError, Target, compare_target


def test_classification_metrics_match_hand_computed_values_when_classes_unbalanced() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    m = classification_metrics(gold, predicted)
    assert m.labels == ("a", "b", "c") and m.confusion == ((2, 1, 0), (0, 1, 1), (0, 0, 1))
    assert m.accuracy == pytest.approx(4 / 6)
    # a: P 1, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 1/2; c: P 1/2, R 1, F1 2/3
    assert m.per_class["a"].f1 == pytest.approx(0.8) and m.per_class["c"].recall == 1.0
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_classification_metrics_count_unknown_prediction_as_its_own_column_when_not_in_gold() -> None:
    m = classification_metrics(["x", "y"], ["x", "zzz"], known=("y", "x"))
    assert m.labels == ("y", "x", "zzz") and m.confusion[0] == (0, 0, 1)
    assert m.per_class["zzz"].precision == 0.0 and m.accuracy == 0.5
    with pytest.raises(ValueError, match="equally many"):
        classification_metrics(["x"], [])


def test_compare_target_reads_model_url_or_both_when_given() -> None:
    main = Target(model="m", url="127.0.0.1:8001")
    assert compare_target("other", main) == Target(model="other", url="127.0.0.1:8001")
    assert compare_target("10.0.0.2:9001", main) == Target(model="m", url="10.0.0.2:9001")
    assert compare_target("x@h:1", main) == Target(model="x", url="h:1")
    with pytest.raises(EvaluateError, match="itself"):
        compare_target("m", main)


def _independent_scores(gold: list[str], predicted: list[str]) -> tuple[float, float]:
    """Accuracy and macro F1 by plain counting (not the module under test)."""
    pairs = Counter(zip(gold, predicted))
    classes = set(gold) | set(predicted)
    f1s = []
    for c in classes:
        tp = pairs[(c, c)]
        fp = sum(n for (g, p), n in pairs.items() if p == c and g != c)
        fn = sum(n for (g, p), n in pairs.items() if g == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(pairs[(c, c)] for c in classes) / len(gold), sum(f1s) / len(f1s)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_evaluate_matches_independent_count_of_client_answers_when_served(triton_server, tmp_path: Path, protocol):
    from tritonize.client import TritonizeClient
    from tritonize.corpus import builtin_emotion
    from tritonize.evaluation.run import EvaluateConfig, run_evaluate

    examples = builtin_emotion()[::3]  # 40 texts, every label
    dataset = tmp_path / "small.txt"
    dataset.write_text("".join(f"{e.text};{e.label}\n" for e in examples), encoding="utf-8")
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    config = EvaluateConfig(
        model="distilbert_emotion", dataset=dataset, protocol=protocol, url=url, out=tmp_path / "out",
        compare="t5_small_emotion",
    )  # fmt: skip
    report = run_evaluate(config)

    texts, gold = [e.text for e in examples], [e.label for e in examples]
    with TritonizeClient(url, protocol) as client:
        labels = [r["label"] for r in client.classify(texts, model="distilbert_emotion")]
        t5_words = [r["generated_text"].strip().lower() for r in client.generate(texts, model="t5_small_emotion")]
    accuracy, macro_f1 = _independent_scores(gold, labels)
    main, other = report["deployments"]
    assert main["heads"]["label"]["accuracy"] == pytest.approx(accuracy)
    assert main["heads"]["label"]["macro_f1"] == pytest.approx(macro_f1)
    assert sum(map(sum, main["heads"]["label"]["confusion"]["matrix"])) == len(examples)
    assert set(other["heads"]) == {"label", "generated"}  # T5: label scoring and the generated word
    assert other["heads"]["generated"]["accuracy"] == pytest.approx(_independent_scores(gold, t5_words)[0])
    delta = report["comparison"]["label"]["accuracy_delta"]
    assert delta == pytest.approx(other["heads"]["label"]["accuracy"] - accuracy)
    assert main["latency"]["requests"] == 2 and main["latency"]["p50_ms"] > 0  # 40 texts in requests of 32
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert Path(saved["deployments"][0]["heads"]["label"]["confusion_png"]).read_bytes()[:4] == b"\x89PNG"
    assert f"{delta:+.4f}" in (tmp_path / "out" / "evaluation.md").read_text()
