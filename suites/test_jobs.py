"""`operators.run --jobs N`: the operators split over N runs at once (one per GPU), one report, the
same as a single run writes apart from timings; a failing kernel still fails the run."""

import json
import os
import signal
import sys

import pytest

from operators.core.device import Device
from operators.core.jobs import PART_VARIABLE, job_environment, split_operators
from operators.core.journal import JOURNAL_VARIABLE
from operators.core.registry import OPERATOR_NAMES
from operators.core.status import STATUS_VARIABLE
from operators.run import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, main
from reports.schema_check import schema_for, validate
from suites.test_isolation import C_SLEEP, terminated_when_misbehaving, write_backend

ARGUMENTS = ["--operators", "rms_norm,swiglu,rope,argmax", "--dtypes", "f32,bf16", "--examples", "3"]


def without_timings(document: dict) -> dict:
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in document["cases"]]
    return {"cases": rows, **{k: document[k] for k in ("verdict", "summary", "coverage", "budgets", "contract")}}


def test_two_jobs_write_the_report_one_run_writes(harness, tmp_path, capsys):
    alone, split = tmp_path / "alone.json", tmp_path / "split.json"
    common = ["--device", harness.device.value, *ARGUMENTS]
    assert main([*common, "--output", str(alone)]) == EXIT_PASS, capsys.readouterr().err
    assert main([*common, "--jobs", "2", "--output", str(split)]) == EXIT_PASS, capsys.readouterr().err
    one, two = json.loads(alone.read_text()), json.loads(split.read_text())
    assert two["config"]["jobs"] == 2 and one["cases"]
    assert without_timings(two) == without_timings(one)
    assert validate(two, schema_for("operators")) == []


def test_a_failing_kernel_fails_the_run_of_jobs(harness, tmp_path, capsys):
    report = tmp_path / "r.json"
    code = main(["--device", harness.device.value, "--backend", "suites.wrong_kernels.rope_gptj_for_neox",
                 *ARGUMENTS, "--no-contract", "--jobs", "3", "--output", str(report)])
    assert code == EXIT_FAIL
    failed = {row["operator"] for row in json.loads(report.read_text())["cases"] if row["verdict"] == "fail"}
    assert failed == {"rope"}
    assert "verdict: FAIL" in capsys.readouterr().err


PARTIAL_BACKEND = """
from operators.backends import Backend, load_backend

def backend(device):
    native = load_backend("native", device)
    return Backend("partial", device, {op: native.kernel(op) for op in ("swiglu", "rms_norm", "argmax")})
"""


def test_jobs_share_out_only_the_operators_a_backend_has(harness, tmp_path, monkeypatch, capsys):
    (tmp_path / "partial_jobs_backend.py").write_text(PARTIAL_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    alone, split = tmp_path / "alone.json", tmp_path / "split.json"
    common = ["--device", harness.device.value, "--backend", "partial_jobs_backend", "--dtypes", "f32",
              "--examples", "2", "--no-contract"]
    assert main([*common, "--output", str(alone)]) == EXIT_PASS, capsys.readouterr().err
    assert main([*common, "--jobs", "2", "--output", str(split)]) == EXIT_PASS, capsys.readouterr().err
    one, two = json.loads(alone.read_text()), json.loads(split.read_text())
    assert two["config"]["skipped_operators"] == one["config"]["skipped_operators"]
    assert len(one["config"]["skipped_operators"]) == len(OPERATOR_NAMES) - 3
    assert without_timings(two) == without_timings(one)


def test_replay_takes_no_jobs(capsys):
    assert main(["--replay", "{}", "--jobs", "2"]) == EXIT_USAGE
    assert "leave out --jobs" in capsys.readouterr().err


def test_the_operators_are_shared_out_whole_and_in_order():
    shares = split_operators(OPERATOR_NAMES, 3)
    assert sorted(op for share in shares for op in share) == sorted(OPERATOR_NAMES)
    for share in shares:
        assert list(share) == [op for op in OPERATOR_NAMES if op in share]
    assert split_operators(("swiglu",), 4) == [("swiglu",)]


def test_a_job_is_a_fresh_watched_run_on_a_gpu_of_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv(STATUS_VARIABLE, "/watching/parent/status")
    monkeypatch.setenv(JOURNAL_VARIABLE, "/watching/parent/journal")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    environment = job_environment(3, Device.NVIDIA, 2, tmp_path / "part3")
    assert STATUS_VARIABLE not in environment and JOURNAL_VARIABLE not in environment
    assert environment["CUDA_VISIBLE_DEVICES"] == "5" and environment[PART_VARIABLE] == str(tmp_path / "part3")
    assert job_environment(1, Device.CPU, 0, tmp_path / "p")["CUDA_VISIBLE_DEVICES"] == "2,5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")  # not the 2 GPUs torch sees: left as it is
    assert job_environment(1, Device.NVIDIA, 2, tmp_path / "p")["CUDA_VISIBLE_DEVICES"] == "2,5,7"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert job_environment(3, Device.NVIDIA, 2, tmp_path / "p")["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.slow
def test_sigterm_writes_what_the_jobs_finished_marked_incomplete(harness, tmp_path):
    """Each job reports what it finished, as a stopped run does; the run of jobs joins that."""
    write_backend(tmp_path, C_SLEEP, condition="True")
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "operators.run", "--device", harness.device.value, "--backend",
               "misbehaving_backend", "--operators", "rms_norm,swiglu", "--dtypes", "f32", "--examples", "3",
               "--no-contract", "--jobs", "2", "--output", str(report)]
    returncode, output = terminated_when_misbehaving(command, tmp_path)
    assert returncode == 128 + signal.SIGTERM, output[-3000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "incomplete" and document["incomplete"]["reason"] == "interrupted by SIGTERM"
    assert document["incomplete"]["steps_not_run"] > 0
    assert {c["operator"] for c in document["cases"]} <= {"rms_norm"}
    assert all(c["verdict"] == "pass" for c in document["cases"])
    assert validate(document, schema_for("operators")) == []
