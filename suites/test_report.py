"""The JSON report: complete, valid JSON (no NaN), and written atomically."""

import json

import pytest

from operators.backends import load_backend
from operators.checker import check_case
from operators.registry import get_spec
from operators.strategies import allowed_combos
from operators.dtypes import DType
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
