"""The JSON report: complete, valid JSON (no NaN), and written atomically."""

import json

import pytest

from operators.backends import load_backend
from operators.core.checker import check_case
from operators.core.registry import get_spec
from operators.core.strategies import allowed_combos
from operators.core.dtypes import DType
from reports import document as report


def one_result(harness):
    spec = get_spec("swiglu")
    case = spec.contract_case(allowed_combos(spec, DType.F16)[0])
    return check_case(spec, case, load_backend("native", harness.device).kernel("swiglu"), harness.device, "native")


def test_document_is_strict_json_with_a_summary(harness, tmp_path):
    doc = report.build_document([one_result(harness)], [], {"seed": 0}, {"torch": "x"})
    path = tmp_path / "r.json"
    report.write_json(path, {**doc, "nan": float("nan")})
    loaded = json.loads(path.read_text())
    assert loaded["nan"] is None and loaded["verdict"] == "pass"
    assert loaded["summary"]["swiglu"]["f16"]["combinations"] == {"gate=f16 up=f16 out=f16": {"cases": 1, "passed": 1}}


def test_a_failed_write_leaves_the_previous_report_whole(harness, tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text('{"old": true}\n')

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "fsync", broken)
    with pytest.raises(OSError):
        report.write_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_every_document_names_its_kind_and_readers_refuse_another(harness, tmp_path, capsys):
    """One schema story: the operator report, like the integration, benchmark and panel documents,
    starts with its kind and that kind's schema version; the panel merge and the benchmark compare
    refuse a document of another kind, naming the file and what it is."""
    from operators.bench.compare import main as compare_main
    from operators.panel.merge import main as merge_main
    from reports.schemas import VERSIONS, DocumentKindError, require_kind

    doc = report.build_document([one_result(harness)], [], {"seed": 0}, {"torch": "x"})
    assert (doc["kind"], doc["schema_version"]) == ("operators", VERSIONS["operators"])
    path = tmp_path / "operators.json"
    report.write_json(path, doc)
    assert merge_main([str(path), "--output", str(tmp_path / "merged.json")]) == 2
    assert f"{path}: not a panel document (kind: 'operators')" in capsys.readouterr().err
    assert compare_main([str(path), str(path)]) == 2
    assert "not a benchmark document (kind: 'operators')" in capsys.readouterr().err
    with pytest.raises(DocumentKindError, match="operators schema '9.0'"):
        require_kind({**doc, "schema_version": "9.0"}, "operators", path)


def test_the_same_seed_and_code_write_the_same_report_but_for_timings(harness, tmp_path, capsys):
    from operators.run import EXIT_PASS, main

    def without_timings(value):
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items() if k != "seconds"}
        if isinstance(value, list):
            return [without_timings(v) for v in value]
        return value

    documents = []
    for name in ("first.json", "second.json"):
        assert main(["--device", harness.device.value, "--operators", "rms_norm,argmax,moe_router", "--examples", "3",
                     "--output", str(tmp_path / name)]) == EXIT_PASS, capsys.readouterr().err
        documents.append(without_timings(json.loads((tmp_path / name).read_text())))
    first, second = documents
    assert first["config"].pop("output") != second["config"].pop("output")
    for document in documents:  # the command line names the output; the time it was written moves on
        document["environment"].pop("command"), document["environment"].pop("written")
    assert first == second


def test_reports_of_schema_1_stay_readable_as_baselines(harness):
    """A baseline written before schema 2 (its rows carry `repro`) is still read and replayed."""
    from operators.core.result import replay_line
    from reports.schemas import DocumentKindError, require_kind
    doc = report.build_document([one_result(harness)], [], {"seed": 0}, {"torch": "x"})
    row = doc["cases"][0]
    old = {**doc, "schema_version": "1.5", "cases": [{**row, "repro": "python -m operators.run --replay old"}]}
    assert require_kind(old, "operators", "old.json") is old
    assert replay_line(old["cases"][0]) == "python -m operators.run --replay old"
    assert replay_line(row).startswith(f"python -m operators.run --device {harness.device.value} --backend ")
    with pytest.raises(DocumentKindError, match="reads 1.x and 2.x"):
        require_kind({**doc, "schema_version": "3.0"}, "operators", "new.json")
