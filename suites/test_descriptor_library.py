"""The example adapter of a vendor-style descriptor library (suites/descriptor_library/): built by the
test with the C compiler, judged like any plug-in: what it computes passes, what it refuses is
counted as unsupported (failing only with --require-support), a bug planted in it is caught."""

import json
import sys

import pytest

from operators.core.device import Device
from operators.run import EXIT_FAIL, EXIT_PASS, main
from suites.child_process import run_child

BACKEND = "suites.descriptor_library.backend"
ARGUMENTS = ["--backend", BACKEND, "--operators", "swiglu,rms_norm", "--examples", "8"]


@pytest.fixture
def cpu_only(harness):
    if harness.device is not Device.CPU:
        pytest.skip("descriptor_ops is a CPU library")


def test_the_adapter_passes_with_its_refusals_counted(cpu_only, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert main([*ARGUMENTS, "--output", str(report)]) == EXIT_PASS, capsys.readouterr().err[-3000:]
    document = json.loads(report.read_text())
    computed = [c for c in document["cases"] if c["verdict"] == "pass"]
    refused = [c for c in document["cases"] if c["verdict"] == "unsupported"]
    assert computed and refused and len(computed) + len(refused) == len(document["cases"])
    def out_dtype(row):
        return row["case"]["outputs"]["out"]["dtype"]

    def layouts(row):
        return {t["layout"] for t in [*row["case"]["inputs"].values(), *row["case"]["outputs"].values()]}

    assert all(out_dtype(c) == "float32" for c in computed)
    assert all(out_dtype(c) != "float32" or "reversed" in layouts(c) for c in refused)
    combinations = {c["verdict"] for c in document["contract"]}
    assert combinations == {"pass", "unsupported"}, combinations
    assert main([*ARGUMENTS, "--require-support"]) == EXIT_FAIL


def test_a_bug_in_the_adapter_is_caught(cpu_only, monkeypatch, capsys):
    from suites.descriptor_library import backend

    def swapped(self, *, out, gate, up):  # gate and up passed the wrong way round
        self.run("swiglu", self.descriptor("swiglu", out, up, gate), out, up, gate)
    monkeypatch.setattr(backend.Library, "swiglu", swapped)
    assert main([*ARGUMENTS, "--operators", "swiglu", "--no-contract"]) == EXIT_FAIL
    assert "budget" in capsys.readouterr().err


@pytest.mark.slow
def test_pytest_runs_the_adapter_isolated_and_counts_its_refusals(cpu_only, harness):
    completed = run_child([sys.executable, "-m", "pytest", "suites/test_operators.py", "-k", "swiglu or rms_norm", "-q",
                           "-p", "no:cacheprovider", "-o", "addopts=", "--backend", BACKEND], harness.device)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert f"backend '{BACKEND}' refused " in completed.stdout and "refused (unsupported)" in completed.stdout
