"""`python -m operators.run`: the table, the JSON report, and the exit codes CI gates on."""

import json
import subprocess
import sys

import pytest

from operators.device import Device
from operators.run import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, main

SMALL = ["--operators", "rms_norm,rope", "--dtypes", "bf16", "--examples", "3"]


def run(capsys, *arguments):
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_passing_run_prints_the_table_and_writes_the_report(harness, capsys, tmp_path):
    report = tmp_path / "nested" / "operator_results.json"
    code, out, err = run(capsys, *SMALL, "--device", harness.device.value, "--output", str(report))
    assert code == EXIT_PASS, err
    assert "| rms_norm" in out and "min cosine" in out and "disallowed combos rejected" in out
    document = json.loads(report.read_text())
    assert document["schema_version"] and document["verdict"] == "pass"
    assert document["environment"]["torch"] and document["environment"]["native_library"]["build_hash"]
    assert document["config"]["seed"] == 0 and document["config"]["examples"] == 3
    assert set(document["summary"]) == {"rms_norm", "rope"}
    case = document["cases"][0]
    assert case["implementation"]["symbol"] == f"q3_{case['operator']}" and case["implementation"]["calls"] == 1
    assert {"shapes", "strides"} <= set(case) and case["verdict"] == "pass" and case["repro"]
    assert {"cosine", "max_abs", "max_abs_index", "max_rel", "rel_l2", "ulp_max", "ulp_p99",
            "mismatch_fraction", "error_ratio"} <= set(case["outputs"]["out"]["metrics"])
    assert any(c["allowed"] is False and c["verdict"] == "pass" for c in document["contract"])


def test_the_same_seed_draws_the_same_cases(harness, capsys, tmp_path):
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    for report in reports:
        assert run(capsys, *SMALL, "--no-contract", "--output", str(report))[0] == EXIT_PASS
    cases = [[c["case"] for c in json.loads(r.read_text())["cases"]] for r in reports]
    assert cases[0] == cases[1]


def test_a_wrong_kernel_fails_the_run(harness, capsys):
    code, _, err = run(capsys, "--operators", "rope", "--dtypes", "f32", "--examples", "4", "--no-contract",
                       "--backend", "suites.wrong_kernels.rope_gptj_for_neox")
    assert code == EXIT_FAIL
    assert "reproduce: python -m operators.run" in err and "verdict: FAIL" in err


def test_replay_reruns_one_case(harness, capsys, tmp_path):
    report = tmp_path / "r.json"
    run(capsys, "--operators", "swiglu", "--dtypes", "f16", "--examples", "1", "--no-contract", "--output", str(report))
    case = json.loads(report.read_text())["cases"][0]["case"]
    code, out, _ = run(capsys, "--replay", json.dumps(case))
    assert code == EXIT_PASS and json.loads(out)["verdict"] == "pass"
    code, _, err = run(capsys, "--replay", json.dumps(case), "--backend", "suites.wrong_kernels.swiglu_last_element_unwritten")
    assert code == EXIT_FAIL and "left unwritten" in err


@pytest.mark.parametrize("arguments, words", [
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--operators", "rms_norm,attention_v9"], ["unknown operator", "attention_v9"]),
    (["--dtypes", "f64"], ["f64"]),
    (["--dtypes", "i32"], ["working dtypes"]),
    (["--backend", "no_such_package.backend"], ["could not be imported", "no_such_package"]),
    (["--backend", "json"], ["defines no function backend"]),
    (["--replay", "{not json"], ["--replay"]),
])
def test_usage_errors_exit_2_with_one_line(capsys, arguments, words):
    code, _, err = run(capsys, *arguments)
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert all(word in lines[0] for word in words), lines[0]


def test_an_unavailable_device_exits_2(capsys):
    absent = next((d for d in Device if not d.availability().available), None)
    if absent is None:
        pytest.skip("every device is available here")
    code, _, err = run(capsys, "--device", absent.value)
    assert code == EXIT_USAGE and "not available" in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_report_path_exits_2(harness, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, *SMALL, "--no-contract", "--output", str(blocker / "r.json"))
    assert code == EXIT_USAGE and "cannot write" in err


def test_the_module_entry_point_prints_no_traceback():
    completed = subprocess.run([sys.executable, "-m", "operators.run", "--device", "tpu"], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == EXIT_USAGE
    assert "Traceback" not in completed.stderr and completed.stderr.startswith("error: unknown device")
