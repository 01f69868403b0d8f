"""The drift gate: a kernel that still passes but lost accuracy since the baseline fails the run;
the unchanged kernel against its own baseline never does; new failures and vanished pairs too."""

import json

import pytest

from operators.run import EXIT_FAIL, EXIT_PASS, main
from reports.compare import main as compare_main

ARGUMENTS = ["--operators", "swiglu,rms_norm", "--dtypes", "f32,bf16", "--examples", "8", "--no-contract"]

# Correct to the last bit but for a relative bias of two float32 ulps: inside the budget, about
# three to eight times the native kernel's error.
DRIFTING_BACKEND = """
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)
    swiglu = native.kernel("swiglu")

    def biased(*, out, gate, up):
        swiglu(out=out, gate=gate, up=up)
        out.mul_(1 + 2.4e-7)
    return native.with_kernels("drifting", {"swiglu": biased})
"""


@pytest.fixture
def baseline(harness, tmp_path, capsys):
    path = tmp_path / "baseline.json"
    assert main(["--device", harness.device.value, *ARGUMENTS, "--output", str(path)]) == EXIT_PASS
    capsys.readouterr()
    return path


def test_the_unchanged_kernel_never_drifts_from_its_own_baseline(harness, baseline, capsys):
    for _ in range(5):
        assert main(["--device", harness.device.value, *ARGUMENTS, "--baseline", str(baseline)]) == EXIT_PASS
        assert "none beyond the margin" in capsys.readouterr().err


def test_a_kernel_that_lost_accuracy_but_passes_fails_against_the_baseline(harness, baseline, tmp_path, capsys,
                                                                          monkeypatch):
    (tmp_path / "drifting_backend.py").write_text(DRIFTING_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "drifting.json"
    code = main(["--device", harness.device.value, *ARGUMENTS, "--backend", "drifting_backend", "--baseline",
                 str(baseline), "--output", str(report)])
    out, err = capsys.readouterr()
    assert code == EXIT_FAIL and "drift: swiglu [gate=f32 up=f32 out=f32]" in out, err
    assert json.loads(report.read_text())["verdict"] == "pass"  # every case inside its budget
    assert "REGRESSION" in err and "drift: rms_norm" not in out
    assert main(["--device", harness.device.value, *ARGUMENTS, "--backend", "drifting_backend", "--baseline",
                 str(baseline), "--fail-on", "failures"]) == EXIT_PASS
    capsys.readouterr()
    assert compare_main([str(baseline), str(report)]) == 1 and compare_main([str(baseline), str(baseline)]) == 0


def test_new_failures_and_vanished_pairs_are_regressions(harness, baseline, tmp_path, capsys):
    code = main(["--device", harness.device.value, *ARGUMENTS, "--backend", "suites.wrong_kernels.swiglu_last_element_unwritten",
                 "--baseline", str(baseline), "--fail-on", "failures"])
    assert code == EXIT_FAIL and "new failure: swiglu" in capsys.readouterr().out
    narrower = [*ARGUMENTS[:2], "--dtypes", "f32", *ARGUMENTS[4:]]
    assert main(["--device", harness.device.value, *narrower, "--baseline", str(baseline)]) == EXIT_FAIL
    assert "missing: swiglu bf16 is in the baseline, not in this run" in capsys.readouterr().out


def test_compare_refuses_what_is_not_an_operators_report(tmp_path, capsys, baseline):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "benchmark", "schema_version": "1.0"}))
    assert compare_main([str(baseline), str(other)]) == 2
    assert "not a operators document (kind: 'benchmark')" in capsys.readouterr().err


def test_junit_xml_holds_every_case_and_contract_check_with_failures_and_replay_lines(harness, tmp_path, capsys):
    import xml.etree.ElementTree as ET
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    code = main(["--device", harness.device.value, "--operators", "swiglu,rms_norm", "--dtypes", "f32",
                 "--examples", "3", "--backend", "suites.wrong_kernels.swiglu_last_element_unwritten",
                 "--output", str(report), "--junit-xml", str(junit)])
    assert code == EXIT_FAIL, capsys.readouterr().err
    document = json.loads(report.read_text())
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == len(document["cases"]) + len(document["contract"])
    failed = [c for c in cases if c.find("failure") is not None]
    expected = sum(c["verdict"] == "fail" for c in document["cases"]) + sum(
        c["verdict"] == "fail" for c in document["contract"])
    assert failed and len(failed) == expected == int(suite.get("failures"))
    assert all(c.get("classname").startswith("swiglu.") for c in failed)
    assert all("reproduce: python -m operators.run" in c.find("failure").text for c in failed
               if not c.get("classname").endswith(".contract"))


def test_the_markdown_summary_holds_the_tables_failures_and_drift(harness, baseline, tmp_path, capsys):
    markdown = tmp_path / "summary.md"
    code = main(["--device", harness.device.value, *ARGUMENTS, "--backend",
                 "suites.wrong_kernels.swiglu_last_element_unwritten", "--baseline", str(baseline),
                 "--markdown", str(markdown)])
    assert code == EXIT_FAIL, capsys.readouterr().err
    text = markdown.read_text()
    assert text.startswith("# Qwen3 operators: FAIL (drift: REGRESSION)")
    assert "| operator " in text and "## Failures (" in text and "reproduce: python -m operators.run" in text
    assert "## Drift against" in text and "new failure: swiglu" in text


@pytest.mark.slow
def test_pytest_baseline_fails_the_session_on_drift(harness, tmp_path):
    import sys

    from suites.child_process import run_child
    (tmp_path / "drifting_backend.py").write_text(DRIFTING_BACKEND)
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pytest", "suites/test_operators.py", "-k", "test_operator and swiglu", "-q",
               "-p", "no:cacheprovider", "-o", "addopts=", "--device", harness.device.value, "--dtypes", "f32"]
    first = run_child([*command, "--report", str(report)], harness.device)
    assert first.returncode == 0, first.stdout[-2000:]
    same = run_child([*command, "--baseline", str(report)], harness.device)
    assert same.returncode == 0 and "drift against" in same.stdout and "none beyond the margin" in same.stdout, \
        same.stdout[-2000:]
    drifting = run_child([*command, "--backend", "drifting_backend", "--baseline", str(report)], harness.device,
                         extra_path=tmp_path)
    assert drifting.returncode == 1 and "REGRESSION" in drifting.stdout, drifting.stdout[-2000:]
    assert " passed" in drifting.stdout and " failed" not in drifting.stdout  # every test passed


def test_an_integration_drift_is_flagged_where_it_starts(harness, tmp_path, capsys, monkeypatch):
    from operators.integrate import main as integrate_main
    # Five float32 ulps of bias in every swiglu: the model still passes, layer 0's MLP 2.6x further from it.
    # A module name of its own: the file of another test's drifting_backend would not be imported again.
    (tmp_path / "model_drifting_backend.py").write_text(DRIFTING_BACKEND.replace("2.4e-7", "6e-7"))
    monkeypatch.syspath_prepend(str(tmp_path))
    baseline, again, drifted = (tmp_path / f"{name}.json" for name in ("baseline", "again", "drifted"))
    common = ["--device", harness.device.value, "--dtype", "f32", "--steps", "1"]
    assert integrate_main([*common, "--output", str(baseline)]) == EXIT_PASS, capsys.readouterr().err
    assert integrate_main([*common, "--output", str(again), "--baseline", str(baseline)]) == EXIT_PASS
    assert "none beyond the margin" in capsys.readouterr().err
    code = integrate_main([*common, "--backend", "model_drifting_backend", "--output", str(drifted), "--baseline",
                           str(baseline)])
    out = capsys.readouterr().out
    drifts = [line for line in out.splitlines() if line.startswith("drift: ")]
    assert code == EXIT_FAIL and drifts and "new failure" not in out, out[-3000:]
    assert json.loads(drifted.read_text())["verdict"] == "pass"
    assert drifts[0].startswith("drift: layer 0, after mlp: budget use "), drifts[:3]


def test_integration_junit_and_markdown_name_the_failing_points(harness, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    from operators.integrate import main as integrate_main
    junit, markdown, output = tmp_path / "model.xml", tmp_path / "model.md", tmp_path / "model.json"
    code = integrate_main(["--device", harness.device.value, "--backend", "suites.wrong_kernels.model_gqa_mapping",
                           "--steps", "0", "--output", str(output), "--junit-xml", str(junit),
                           "--markdown", str(markdown)])
    assert code == EXIT_FAIL, capsys.readouterr().err
    document = json.loads(output.read_text())
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(document["points"]) + 1
    failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert len(failed) == sum(not p["passed"] for p in document["points"]) + 1
    assert (failed[0].get("classname"), failed[0].get("name")) == ("layer0", "attention")
    text = markdown.read_text()
    assert text.startswith("# Qwen3 integration: FAIL") and "| layer" in text and "## Attribution" in text


def test_a_baseline_of_other_draws_is_a_regression_not_a_pass(harness, baseline, capsys):
    """Another seed draws other cases (a few boundary cases aside): next to nothing would be compared,
    so the gate must not pass."""
    code = main(["--device", harness.device.value, *ARGUMENTS, "--seed", "1", "--baseline", str(baseline)])
    assert code == EXIT_FAIL and "not comparable: the baseline was made with another seed: 0 -> 1" in \
        capsys.readouterr().out


def test_an_integration_baseline_of_another_prompt_is_not_comparable(harness, tmp_path, capsys):
    from operators.integrate import main as integrate_main
    baseline = tmp_path / "baseline.json"
    common = ["--device", harness.device.value, "--dtype", "f32", "--steps", "0"]
    assert integrate_main([*common, "--output", str(baseline)]) == EXIT_PASS
    assert integrate_main([*common, "--seed", "1", "--output", str(tmp_path / "other.json"), "--baseline",
                           str(baseline)]) == EXIT_FAIL
    assert "not comparable: the baseline was made with another seed: 0 -> 1" in capsys.readouterr().out
