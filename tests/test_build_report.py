"""The build report: one typed, versioned format (tritonize/repository/report.py) and its published JSON Schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import _reports
import jsonschema
import pytest

from tritonize.repository.report import (
    REPORT_FILE,
    REPORT_VERSION,
    BuildReport,
    ClassifierGate,
    DemoCheckpoint,
    EngineEntry,
    EngineStatus,
    GateThresholds,
    GraphDiff,
    GraphEntry,
    ReportError,
    T5Decoding,
    Text2TextGate,
    TorchRuntime,
    Validation,
    json_schema,
    read_report,
    write_report,
)
from tritonize.spec import Precision, Target, Task

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "reference" / "build-report.schema.json"
GATE = GateThresholds(min_agreement=0.99, tie_margin=0.01, tolerance=0.05)


def _full_report() -> BuildReport:
    """Every optional part set: engines of each status, both gates, a torch runtime, demo, decoding."""
    base = _reports.report({"cls": Task.TEXT_CLASSIFICATION, "t5": Task.TEXT2TEXT_GENERATION}, Target.GPU)
    graph = GraphEntry(file="model.onnx", precision=Precision.FP16, fp32_nodes=3)
    engines = {
        "cls_model": EngineEntry(engine=EngineStatus.BUILT, plan={"step": "cls_model"}, graph=graph,
                                 build_info={"build_info_version": 1}, settings={"tf32": False}),
        "cls_other": EngineEntry(engine=EngineStatus.REUSED, plan={}, graph=graph, cache_key="ab" * 32),
        "cls_pending": EngineEntry(engine=EngineStatus.PENDING, plan={}, graph=graph),
    }
    cls = dataclasses.replace(
        base.models["cls"],
        demo=DemoCheckpoint(size="tiny", architecture="distilbert", path="/cache/demo", train_data=None),
        engines=engines,
        accuracy_gate=ClassifierGate(max_abs_diff=0.01, top1_agreement=1.0, top1_strict_agreement=0.99, top1_ties=1,
                                     max_prob_diff=0.002, num_texts=120, num_batches=5, gate=GATE, rehearsed=True,
                                     note="rehearsal"),
    )
    t5 = dataclasses.replace(
        base.models["t5"],
        validation=Validation(max_abs_diff=1e-5, num_texts=8, num_batches=2, tolerance=1e-3, decoder_steps=3,
                              graphs={"encoder.onnx": GraphDiff(max_abs_diff=1e-5)}),
        decoding=T5Decoding(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, num_decoder_layers=2),
        runtime=TorchRuntime(runtime="torch-cpu", device="cpu", model_class="T5ForConditionalGeneration",
                             cuda_graphs=False, plans={"encoder": {"precision": "fp32"}}, files=("config.json",)),
        accuracy_gate=Text2TextGate(encoder_max_abs_diff=0.0, token_agreement=1.0, token_strict_agreement=0.99,
                                    token_ties=1, sequence_agreement=1.0,
                                    label_prob_max_diff=0.0, num_texts=8, max_new_tokens=4, gate=GATE),
    )
    return dataclasses.replace(base, demo="tiny", rehearsal="rehearsal", models={"cls": cls, "t5": t5})


def test_schema_file_is_the_one_generated_from_the_dataclasses():
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema(), (
        f"{SCHEMA_FILE} is stale: run scripts/generate_docs.py"
    )
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_round_trip_keeps_every_field():
    report = _full_report()
    assert BuildReport.from_dict(report.to_dict()) == report
    assert BuildReport.from_dict(json.loads(report.to_json())) == report
    with pytest.raises(ReportError, match="upgrade tritonize"):
        BuildReport.from_dict({**report.to_dict(), "report_version": REPORT_VERSION + 1})
    jsonschema.validate(report.to_dict(), json_schema())


def test_report_of_a_real_build_reads_back_typed_and_validates_against_the_schema(demo_repository: Path):
    data = json.loads((demo_repository / REPORT_FILE).read_text(encoding="utf-8"))
    jsonschema.validate(data, json_schema())
    report = read_report(demo_repository)
    assert report.to_dict() == data and report.report_version == REPORT_VERSION
    assert report.target is Target.EMBEDDED and report.demo == "tiny"
    assert report.of_task(Task.TEXT_CLASSIFICATION) == ["distilbert_emotion"]
    t5 = report.models["t5_small_emotion"]
    assert t5.decoding is not None and t5.decoding.num_decoder_layers >= 1
    assert set(t5.decoding.parameters().values()) <= {str(v) for v in t5.decoding.ids().values()}
    assert data["models"]["t5_small_emotion"]["decoding"]["eos_token_id"] == t5.decoding.eos_token_id  # an int
    for entry in report.models.values():
        assert entry.demo is not None and entry.demo.size == "tiny" and entry.models and entry.configs


def test_write_then_read_in_a_repository(tmp_path: Path):
    report = _full_report()
    write_report(tmp_path, report)
    assert read_report(tmp_path) == report
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("report_version"), "without report_version"),
        (lambda d: d.update(report_version=REPORT_VERSION + 1), "upgrade tritonize"),
        (lambda d: d.update(report_version=1), "rebuild the repository"),
        (lambda d: d.update(target="tpu"), r"target: 'tpu' is not one of"),
        (lambda d: d["models"]["cls"].pop("checkpoint"), r"models\.cls\.checkpoint: missing"),
        (lambda d: d["models"]["cls"]["engines"]["cls_model"].update(engine="built ok"), "engine"),
        (lambda d: d["models"]["t5"]["decoding"].update(eos_token_id="1"), r"eos_token_id: expected int"),
        (lambda d: d.update(extra=1), r"unknown field\(s\) \['extra'\]"),
        (lambda d: d["models"]["cls"]["accuracy_gate"].pop("top1_ties"), "matches none of"),
    ],
)
def test_a_bad_report_is_refused_naming_the_file_and_the_field(tmp_path: Path, change, message):
    data = _full_report().to_dict()
    change(data)
    (tmp_path / REPORT_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError, match=message) as caught:
        read_report(tmp_path)
    assert str(tmp_path / REPORT_FILE) in str(caught.value)


def test_missing_and_non_json_reports_are_refused_naming_the_file(tmp_path: Path):
    with pytest.raises(ReportError, match=f"{REPORT_FILE}: no build report"):
        read_report(tmp_path)
    (tmp_path / REPORT_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportError, match="not JSON"):
        read_report(tmp_path)
    (tmp_path / REPORT_FILE).write_text("[]", encoding="utf-8")
    with pytest.raises(ReportError, match="not a build report"):
        read_report(tmp_path)
