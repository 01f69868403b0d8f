"""A kernel that ends the process or never returns fails its own case; the run goes on, the report is
written; SIGTERM writes the report of the finished cases marked incomplete (operators/core/supervision.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from operators.core import supervision
from operators.core.device import Device
from operators.core.journal import EndedCall, Journal
from operators.run import EXIT_FAIL
from suites.child_process import run_child

# A native backend whose swiglu misbehaves on the cases whose last dimension is odd (or on all of them).
MISBEHAVING_BACKEND = '''
import ctypes
from pathlib import Path
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)
    real = native.kernel("swiglu")

    def swiglu(*, out, gate, up):
        if {condition}:
            Path({marker!r}).touch()
            {misdeed}
        real(out=out, gate=gate, up=up)
    return native.with_kernels("misbehaving", {{"swiglu": swiglu}})
'''
SEGFAULT, C_EXIT, C_SLEEP = "ctypes.string_at(0)", "ctypes.CDLL(None).exit(0)", "ctypes.CDLL(None).sleep(1000)"


def write_backend(tmp_path, misdeed: str, condition: str = "gate.shape[-1] % 2 == 1") -> None:
    (tmp_path / "misbehaving_backend.py").write_text(
        MISBEHAVING_BACKEND.format(condition=condition, misdeed=misdeed, marker=str(tmp_path / "misbehaved")))


def run_command(harness, tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report.json"
    completed = run_child([sys.executable, "-m", "operators.run", "--device", harness.device.value, "--backend",
                           "misbehaving_backend", "--dtypes", "f32", "--no-contract", "--output", str(report),
                           *extra], harness.device, extra_path=tmp_path)
    return completed, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.slow
@pytest.mark.parametrize("misdeed, end", [(C_EXIT, "exit status 0"), (SEGFAULT, "signal SIGSEGV")])
def test_a_kernel_that_ends_the_process_fails_its_case_and_the_run_goes_on(harness, tmp_path, misdeed, end):
    write_backend(tmp_path, misdeed)
    completed, report = run_command(harness, tmp_path, "--operators", "swiglu,rms_norm", "--examples", "4")
    assert completed.returncode == EXIT_FAIL, completed.stderr[-2000:]
    swiglu = [c for c in report["cases"] if c["operator"] == "swiglu"]
    odd = [c for c in swiglu if c["case"]["inputs"]["gate"]["shape"][-1] % 2 == 1]
    assert odd and len(odd) < len(swiglu), "the draw needs odd and even widths"
    for case in swiglu:
        if case in odd:
            assert case["verdict"] == "fail" and case["reasons"][0].startswith(
                f"crashed: the process ended ({end}) inside the kernel call"), case["reasons"]
            if harness.device is Device.CPU and end.startswith("signal"):  # the fault's address, from its handler
                assert case["reasons"][0].endswith("which faulted at address 0x0, not next to any tensor of the call")
        else:
            assert case["verdict"] == "pass", case["reasons"]
    assert all(c["verdict"] == "pass" for c in report["cases"] if c["operator"] == "rms_norm")  # after swiglu
    assert "--backend misbehaving_backend --replay '{" in completed.stderr and "incomplete" not in report
    assert completed.stderr.count("going on in a new process") == len(odd)


@pytest.mark.slow
def test_a_kernel_that_never_returns_times_out_and_fails_its_case(harness, tmp_path):
    write_backend(tmp_path, C_SLEEP, condition="True")
    completed, report = run_command(harness, tmp_path, "--operators", "swiglu", "--examples", "2",
                                    "--kernel-timeout", "1")
    assert completed.returncode == EXIT_FAIL, completed.stderr[-2000:]
    assert report["cases"] and all(c["verdict"] == "fail" and c["reasons"][0].startswith(
        "timed out: the call did not return within ") for c in report["cases"]), [c["reasons"] for c in report["cases"]]


def terminated_when_misbehaving(command: list[str], tmp_path) -> tuple[int, str]:
    """Run `command` until the plug-in's kernel starts misbehaving, then SIGTERM it: exit code, output."""
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    deadline = time.monotonic() + 300
    while not (tmp_path / "misbehaved").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=300)
    return run.returncode, output


@pytest.mark.slow
def test_sigterm_writes_the_finished_cases_marked_incomplete(harness, tmp_path):
    write_backend(tmp_path, C_SLEEP, condition="True")
    report = tmp_path / "report.json"
    report.write_text("a stale report of an earlier run")
    command = [sys.executable, "-m", "operators.run", "--device", harness.device.value, "--backend",
               "misbehaving_backend", "--operators", "rms_norm,swiglu", "--dtypes", "f32", "--examples", "3",
               "--output", str(report)]
    returncode, output = terminated_when_misbehaving(command, tmp_path)
    assert returncode == 128 + signal.SIGTERM, output[-2000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "incomplete" and document["incomplete"]["reason"] == "interrupted by SIGTERM"
    assert document["incomplete"]["steps_not_run"] > 0
    assert {c["operator"] for c in document["cases"]} == {"rms_norm"}
    assert all(c["verdict"] == "pass" for c in document["cases"])


@pytest.mark.slow
def test_too_many_ended_calls_stop_the_run_with_a_report(harness, tmp_path, monkeypatch, capsys):
    write_backend(tmp_path, SEGFAULT, condition="True")
    monkeypatch.setattr(supervision, "MAX_ENDED_CALLS", 2)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    report = tmp_path / "report.json"
    code = supervision.supervise("operators.run", [
        "--device", harness.device.value, "--backend", "misbehaving_backend", "--operators", "swiglu",
        "--dtypes", "f32", "--examples", "5", "--no-contract", "--output", str(report)], resumes=True)
    document = json.loads(report.read_text())
    assert code == EXIT_FAIL and document["verdict"] == "fail", capsys.readouterr().err[-2000:]
    assert document["incomplete"]["reason"] == "stopped after 2 kernel calls that did not return"
    assert len(document["cases"]) == 2 and document["incomplete"]["steps_not_run"] >= 3


def test_the_journal_keeps_complete_records_and_drops_a_cut_one(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.append("a", {"result": 1})
    journal.append("b", EndedCall("crashed"))
    with open(journal.path, "ab") as file:
        file.write((1000).to_bytes(8, "little") + b"cut short")
    assert journal.read() == {"a": {"result": 1}, "b": EndedCall("crashed")}


FAULTING_CUDA_BACKEND = '''
import triton
import triton.language as tl
from operators.backends import load_backend


@triton.jit
def store_far_away(out):
    tl.store(out + (1 << 40), 1.0)


def backend(device):
    native = load_backend("native", device)
    real = native.kernel("swiglu")

    def swiglu(*, out, gate, up):
        if gate.shape[-1] % 2 == 1:
            store_far_away[(1,)](out)
        else:
            real(out=out, gate=gate, up=up)
    return native.with_kernels("faulting", {"swiglu": swiglu})
'''


@pytest.mark.slow
def test_a_gpu_fault_fails_its_case_and_a_fresh_process_goes_on(harness, tmp_path):
    """An illegal address leaves the CUDA context unusable: the case that caused it fails, naming the
    device's error, and the next cases run in a new process (and pass)."""
    if harness.device is not Device.NVIDIA:
        pytest.skip("a CUDA fault needs --device nvidia")
    pytest.importorskip("triton")
    (tmp_path / "misbehaving_backend.py").write_text(FAULTING_CUDA_BACKEND)
    completed, report = run_command(harness, tmp_path, "--operators", "swiglu", "--examples", "4")
    assert completed.returncode == EXIT_FAIL, completed.stderr[-2000:]
    swiglu = report["cases"]
    odd = [c for c in swiglu if c["case"]["inputs"]["gate"]["shape"][-1] % 2 == 1]
    assert odd and len(odd) < len(swiglu), "the draw needs odd and even widths"
    for case in swiglu:
        if case in odd:
            assert case["reasons"][0].startswith("crashed: the device failed after the kernel call ("), case["reasons"]
        else:
            assert case["verdict"] == "pass", case["reasons"]


def pytest_command(harness, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites/test_operators.py", "-q", "-p", "no:cacheprovider", "-o",
            "addopts=", "--tb=line", "-rf", "--device", harness.device.value, "--dtypes", "f32", "--backend",
            "misbehaving_backend", *extra]


@pytest.mark.slow
def test_under_pytest_a_crashing_kernel_fails_its_test_with_the_case_and_the_run_goes_on(harness, tmp_path):
    write_backend(tmp_path, SEGFAULT)
    completed = run_child(pytest_command(harness, "-k", "test_operator and (swiglu or rms_norm)"), harness.device,
                          extra_path=tmp_path)
    failed = [line for line in completed.stdout.splitlines() if line.startswith("FAILED")]
    assert completed.returncode == 1 and len(failed) == 1 and "f32-swiglu" in failed[0], completed.stdout[-3000:]
    assert completed.stdout.splitlines()[-1].startswith("1 failed, ") and " passed" in completed.stdout.splitlines()[-1]
    assert "crashed: the process ended (signal SIGSEGV) inside the kernel call" in completed.stdout
    if harness.device is Device.CPU:  # the worker's fault handler gave the address
        assert "which faulted at address 0x0, not next to any tensor of the call" in completed.stdout
    assert "reproduce: python -m operators.run" in completed.stdout and "--backend misbehaving_backend" in completed.stdout


@pytest.mark.slow
def test_under_pytest_a_kernel_that_never_returns_times_out(harness, tmp_path):
    write_backend(tmp_path, C_SLEEP, condition="True")
    completed = run_child(pytest_command(harness, "-k", "test_operator and swiglu", "--kernel-timeout", "1"),
                          harness.device, extra_path=tmp_path)
    assert completed.returncode == 1 and "timed out: the call did not return within 1 s" in completed.stdout, \
        completed.stdout[-3000:]


OVERREADING_BACKEND = '''
import ctypes
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)
    real = native.kernel("swiglu")

    def swiglu(*, out, gate, up):
        storage = up.untyped_storage()
        if gate.shape[-1] % 2 == 1:
            ctypes.string_at(storage.data_ptr() + storage.nbytes() + 100, 1)  # 100 bytes past up's buffer
        real(out=out, gate=gate, up=up)
    return native.with_kernels("overreading", {"swiglu": swiglu})
'''


@pytest.mark.slow
def test_guard_pages_turn_a_read_past_an_input_into_a_failure_naming_it(harness, tmp_path):
    """A read 100 bytes past `up`'s buffer (sentinels included) lands in the guard page: its case fails
    naming `up`, and the other cases pass."""
    if harness.device is not Device.CPU:
        pytest.skip("guard pages are CPU memory")
    (tmp_path / "misbehaving_backend.py").write_text(OVERREADING_BACKEND)
    completed, report = run_command(harness, tmp_path, "--operators", "swiglu", "--examples", "6", "--guard-pages")
    assert completed.returncode == EXIT_FAIL, completed.stderr[-2000:]
    odd = [c for c in report["cases"] if c["case"]["inputs"]["gate"]["shape"][-1] % 2 == 1]
    assert odd and len(odd) < len(report["cases"])
    for case in report["cases"]:
        if case in odd:
            assert case["reasons"] == ["crashed: the process ended (signal SIGSEGV) inside the kernel call, which "
                                       "read or wrote outside 'up': 100 bytes past the end of its buffer"]
        else:
            assert case["verdict"] == "pass", case["reasons"]


def test_a_guarded_buffer_ends_at_an_inaccessible_page_and_keeps_its_alignment():
    import torch

    from operators.core.guard_pages import PAGE, describe_fault, guarded_empty, storage_range
    tensor = guarded_empty(1001, torch.float16)
    start, end = storage_range(tensor)
    assert tensor.numel() >= 1001 and start % 64 == 0 and end % PAGE == 0
    assert describe_fault(end + 3, {"x": (start, end)}) == "read or wrote outside 'x': 3 bytes past the end of its buffer"
    assert describe_fault(start - 8, {"x": (start, end)}).endswith("8 bytes before the start of its buffer")


OVERREADING_C = r'''
#include <stdlib.h>
#include <string.h>
float read_past(const float *source, size_t count) {
    float *copy = malloc(count * sizeof *copy);
    memcpy(copy, source, count * sizeof *copy);
    float past = copy[count];
    free(copy);
    return past;
}
'''
SANITIZED_BACKEND = '''
import ctypes
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)
    real = native.kernel("swiglu")
    library = ctypes.CDLL({library!r})
    library.read_past.restype = ctypes.c_float

    def swiglu(*, out, gate, up):
        if gate.shape[-1] % 2 == 1:
            dense = gate.contiguous()
            library.read_past(ctypes.c_void_p(dense.data_ptr()), ctypes.c_size_t(dense.numel()))
        real(out=out, gate=gate, up=up)
    return native.with_kernels("sanitized", {{"swiglu": swiglu}})
'''


@pytest.mark.slow
def test_an_address_sanitizer_report_is_attached_to_the_case_it_ended(harness, tmp_path):
    if harness.device is not Device.CPU:
        pytest.skip("the sanitized library is a CPU one")
    runtime = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(runtime) or not os.path.exists(runtime):
        pytest.skip("no AddressSanitizer runtime for cc here")
    (tmp_path / "over.c").write_text(OVERREADING_C)
    library = tmp_path / "libover.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-g", "-fsanitize=address", "-o", str(library), str(tmp_path / "over.c")],
                   check=True)
    (tmp_path / "misbehaving_backend.py").write_text(SANITIZED_BACKEND.format(library=str(library)))
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "operators.run", "--backend", "misbehaving_backend", "--operators", "swiglu",
         "--dtypes", "f32", "--examples", "4", "--no-contract", "--output", str(report)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "LD_PRELOAD": runtime, "ASAN_OPTIONS": "detect_leaks=0",
             "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert completed.returncode == EXIT_FAIL, completed.stderr[-2000:]
    failed = [c for c in json.loads(report.read_text())["cases"] if c["verdict"] == "fail"]
    assert failed and all(c["case"]["inputs"]["gate"]["shape"][-1] % 2 == 1 for c in failed)
    assert all(c["reasons"][0].endswith("inside the kernel call: AddressSanitizer: heap-buffer-overflow "
                                        f"{tmp_path / 'over.c'}:7 in read_past (READ of size 4)") for c in failed), \
        [c["reasons"] for c in failed]
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in completed.stderr  # the whole report, printed


@pytest.mark.slow
def test_sigterm_under_pytest_writes_the_report_of_the_finished_cases_marked_incomplete(harness, tmp_path):
    write_backend(tmp_path, C_SLEEP, condition="gate.shape[-1] % 2 == 1")
    report = tmp_path / "report.json"
    returncode, output = terminated_when_misbehaving(
        pytest_command(harness, "-k", "test_operator and (rms_norm or swiglu)", "--report", str(report)), tmp_path)
    assert returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "incomplete" and document["incomplete"]["reason"].startswith("interrupted")
    assert document["cases"] and all(c["verdict"] == "pass" for c in document["cases"])
