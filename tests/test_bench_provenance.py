"""The bench JSON carries its date, machine, command and commit, so the performance page can render them."""

from __future__ import annotations

import json

from tritonize.bench import BenchResult
from tritonize.bench.report import write_result
from tritonize.provenance import provenance


def test_provenance_names_date_machine_command_and_commit_when_read_in_a_checkout() -> None:
    p = provenance("tritonize bench --demo tiny")
    assert p["command"] == "tritonize bench --demo tiny"
    assert p["date_utc"].endswith("Z") and p["machine"]["cpus"]
    assert {"cpu_model", "simd_flags", "gpus"} <= set(p["machine"])
    assert len(p["git"]["commit"]) == 40  # the tests run from a git checkout


def test_bench_json_keeps_the_provenance_when_written(tmp_path) -> None:
    result = BenchResult(config={"demo": "tiny"}, provenance=provenance("tritonize bench"))
    json_path, _ = write_result(result, tmp_path)
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written["provenance"]["command"] == "tritonize bench"
    assert written["provenance"]["git"]["commit"] == result.provenance["git"]["commit"]
