"""The JSON Schemas of the operators report and the integration document (reports/schema/): the
documents every writer makes validate, every field is described, the schemas' vocabularies are the
code's, and a defect planted in a document is named by its JSON path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from operators.core.case import Layout, Regime
from operators.core.device import TORCH_TYPES, Device
from operators.core.dtypes import FLOAT_DTYPES, DType
from operators.core.profiles import PROFILES
from operators.core.result import Verdict
from operators.model.attribution import FAMILIES, NONE
from operators.model.compare import POINT_ORDER
from operators.model.config import ARCHITECTURES
from operators.model.synthetic import SYNTHETIC_MODELS
from operators.run import EXIT_PASS, main
from reports.drift import FAIL_ON
from reports.schema_check import ERRORS_SHOWN, main as check_main, schema_for, schema_kinds, validate
from suites.child_process import run_child

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("operators", "qwen3-integration")
# Discrete operators (argmax, random_sample: no measured outputs) next to measured ones.
ARGUMENTS = ["--operators", "rms_norm,argmax,random_sample,attention_decode", "--dtypes", "f16", "--examples", "2"]
# What reports/schema_check.py checks: the schemas may use nothing else.
KEYWORDS = {"$schema", "$defs", "$ref", "title", "description", "type", "properties", "required",
            "additionalProperties", "items", "enum", "const", "anyOf", "minimum"}


@pytest.fixture(scope="module")
def operators_report(harness, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "operators.json"
    assert main(["--device", harness.device.value, *ARGUMENTS, "--output", str(path)]) == EXIT_PASS
    return path


def errors_of(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    return validate(document, schema_for(document["kind"]))


def subschemas(schema: dict, where: str = "#"):
    """(location, schema) of `schema` and of every schema inside it."""
    yield where, schema
    for keyword in ("properties", "$defs"):
        for name, inner in schema.get(keyword, {}).items():
            yield from subschemas(inner, f"{where}/{keyword}/{name}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            yield from subschemas(schema[keyword], f"{where}/{keyword}")
    for index, inner in enumerate(schema.get("anyOf", ())):
        yield from subschemas(inner, f"{where}/anyOf/{index}")


def test_an_operators_report_validates(operators_report):
    document = json.loads(operators_report.read_text())
    assert {row["operator"] for row in document["cases"] if row["outputs"] == {}} == {"argmax", "random_sample"}
    assert errors_of(operators_report) == []


def test_a_report_with_drift_against_its_baseline_validates(harness, operators_report, tmp_path):
    path = tmp_path / "again.json"
    assert main(["--device", harness.device.value, *ARGUMENTS, "--baseline", str(operators_report),
                 "--output", str(path)]) == EXIT_PASS
    assert json.loads(path.read_text())["drift"]["cases_matched"] > 0
    assert errors_of(path) == []


@pytest.mark.slow
def test_a_pytest_plugin_report_validates(harness, tmp_path):
    path = tmp_path / "pytest.json"
    child = run_child([sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_operators.py"), "-k", "swiglu",
                       "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--device", harness.device.value,
                       "--report", str(path)], harness.device)
    assert child.returncode == 0, child.stdout[-2000:]
    assert json.loads(path.read_text())["config"]["source"] == "pytest"
    assert errors_of(path) == []


def test_an_integration_document_validates(harness, tmp_path):
    from operators.integrate import main as integrate_main
    path = tmp_path / "integration.json"
    # Two steps give a judged decode step; --attribution fills the attribution of a passing run.
    assert integrate_main(["--device", harness.device.value, "--dtype", "f32", "--steps", "2", "--attribution",
                           "--output", str(path)]) == EXIT_PASS
    document = json.loads(path.read_text())
    assert document["generation"]["decode"] is not None and document["attribution"]
    assert errors_of(path) == []


@pytest.mark.parametrize("kind", ("benchmark", "operators", "panel", "qwen3-integration"))
def test_every_field_is_described_in_the_subset_the_checker_knows(kind):
    assert kind in schema_kinds()
    schema = schema_for(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "$id" not in schema
    assert schema["title"].strip() and schema["description"].strip()
    for where, inner in subschemas(schema):
        assert set(inner) <= KEYWORDS, f"{where}: {sorted(set(inner) - KEYWORDS)}"
        assert set(inner.get("required", ())) <= set(inner.get("properties", {})), where
        if "properties" in inner:
            assert "additionalProperties" in inner, f"{where}: say whether other keys are allowed"
        if "$ref" in inner:
            assert inner["$ref"].removeprefix("#/$defs/") in schema["$defs"], where
        named = where.rpartition("/")[0].endswith(("/properties", "/$defs"))  # a field, or a part the others refer to
        map_value = where.endswith("/additionalProperties") and "$ref" not in inner
        if named or map_value:
            assert isinstance(inner.get("description"), str) and inner["description"].strip(), \
                f"{where}: no description"


def test_the_schemas_name_the_values_the_code_has():
    operators, integration = schema_for("operators")["$defs"], schema_for("qwen3-integration")["$defs"]
    for name in ("environment", "cuda_device", "host_device"):
        assert operators[name] == integration[name], f"{name} differs between the two schemas"
    assert operators["case_verdict"]["enum"] == [verdict.value for verdict in Verdict]
    assert operators["device"]["enum"] == [device.value for device in Device] == \
        integration["config"]["properties"]["device"]["enum"]
    assert operators["host_device"]["properties"]["kind"]["enum"] == list(dict.fromkeys(TORCH_TYPES.values()))
    assert operators["dtype"]["enum"] == [dtype.value for dtype in DType]
    assert operators["working_dtype"]["enum"] == [dtype.value for dtype in FLOAT_DTYPES] == \
        integration["config"]["properties"]["dtype"]["enum"]
    assert operators["case"]["properties"]["regime"]["enum"] == [regime.value for regime in Regime]
    assert operators["tensor"]["properties"]["layout"]["enum"] == [layout.value for layout in Layout]
    assert operators["profile"]["enum"] == list(PROFILES)
    assert operators["run_config"]["properties"]["fail_on"]["enum"] == list(FAIL_ON)
    assert integration["point"]["properties"]["point"]["enum"] == [*POINT_ORDER, "decode_logits"]
    assert integration["attribution"]["properties"]["family"]["enum"] == [NONE, *FAMILIES]
    assert integration["config"]["properties"]["synthetic"]["enum"] == [*SYNTHETIC_MODELS, None]
    assert integration["config"]["properties"]["architecture"]["enum"] == list(ARCHITECTURES.values())


@pytest.mark.parametrize("plant, error", [
    (lambda row: row.update(colour="blue"), "{row}.colour: unknown field"),
    (lambda row: row.pop("verdict"), "{row}: missing required field 'verdict'"),
    (lambda row: row["outputs"]["out"]["metrics"].update(cosine="0.99"),
     "{row}.outputs.out.metrics.cosine: expected number or null, found string"),
], ids=["unknown field", "missing field", "string for a number"])
def test_a_planted_defect_is_named_by_its_path(operators_report, plant, error):
    document = json.loads(operators_report.read_text())
    index = next(i for i, row in enumerate(document["cases"]) if "out" in row["outputs"])
    plant(document["cases"][index])
    assert validate(document, schema_for("operators")) == [error.format(row=f"cases[{index}]")]


def test_the_command_exits_0_when_valid_1_when_broken_2_when_unreadable(operators_report, tmp_path, capsys):
    assert check_main([str(operators_report)]) == 0
    assert capsys.readouterr().out == f"{operators_report}: valid operators 2.0 document\n"

    document = json.loads(operators_report.read_text())
    for check in document["contract"]:
        check["allowed"] = "yes"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    assert check_main([str(broken)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"{broken}: not a valid operators 2.0 document:",
                         "  contract[0].allowed: expected boolean, found string"]
    assert len(lines) == ERRORS_SHOWN + 2
    assert lines[-1] == f"  ... and {len(document['contract']) - ERRORS_SHOWN} more errors"

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": "1.0", "kind": "nonesuch"}))
    assert check_main([str(other)]) == 2
    assert ("no schema for kind 'nonesuch' (schemas exist for benchmark, operators, panel, qwen3-integration)"
            in capsys.readouterr().err)
    assert check_main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err

    command = subprocess.run([sys.executable, "-m", "reports.schema_check", str(broken)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert command.returncode == 1 and "contract[0].allowed" in command.stdout, command.stderr
