"""The harness has teeth: each deliberately wrong kernel fails, and the torch control passes."""

import importlib
import json
import sys
from pathlib import Path

import pytest

from operators.backends import load_backend
from operators.core.checker import check_case
from operators.core.contract import check_contract
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.dtypes import FLOAT_DTYPES
from operators.core.registry import OPERATOR_NAMES, get_spec
from suites.child_process import run_child
from suites.wrong_kernels import WRONG_KERNEL_MODULES

# Enough cases per dtype that each regime that exposes a bug is drawn (derandomised by the seed).
SELFTEST_EXAMPLES = 24


def failure_reasons(backend, operator: str, device: Device) -> list[str]:
    spec, kernel = get_spec(operator), backend.kernel(operator)
    reasons = []
    for dtype in FLOAT_DTYPES:
        for case in draw_cases(spec, device, dtype, SELFTEST_EXAMPLES, seed=0):
            reasons += check_case(spec, case, kernel, device, backend.name).reasons
    reasons += [c.detail for c in check_contract(spec, kernel, device, backend.name) if not c.passed]
    return reasons


@pytest.mark.parametrize("module_name", WRONG_KERNEL_MODULES)
def test_wrong_kernel_is_caught(harness, module_name):
    module = importlib.import_module(f"suites.wrong_kernels.{module_name}")
    devices = getattr(module, "DEVICES", None)
    if devices and harness.device.value not in devices:
        pytest.skip(f"{module_name} is a kernel for {', '.join(devices)}; this run is on {harness.device.value}")
    backend = module.backend(harness.device)
    reasons = failure_reasons(backend, module.WRONG_OPERATOR, harness.device)
    assert reasons, f"{module_name}: the wrong {module.WRONG_OPERATOR} kernel passed every case"
    assert any(module.EXPECTED_REASON in r for r in reasons), (
        f"{module_name}: failed, but never with '{module.EXPECTED_REASON}': {reasons[:3]}")


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_torch_control_passes(harness, operator):
    control = load_backend("torch", harness.device)
    assert failure_reasons(control, operator, harness.device) == []


@pytest.mark.slow
def test_pytest_run_fails_on_exactly_the_wrong_kernel(harness, tmp_path):
    """`pytest suites/ --backend <module>` fails the wrong operator's tests and nothing else,
    and its --report holds the failing cases; the harness's self-tests (here test_report.py) are
    left out of a plug-in's run, and the summary says how many."""
    module = "suites.wrong_kernels.rms_norm_eps_outside_sqrt"
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pytest", "suites/test_operators.py", "suites/test_dtype_contract.py",
               "suites/test_report.py",
               "--backend", module, "--device", harness.device.value, "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", "--tb=line", "-rf", "--report", str(report)]
    completed = run_child(command, harness.device, timeout=900)
    failed = [line for line in completed.stdout.splitlines() if line.startswith("FAILED")]
    assert completed.returncode == 1, completed.stdout[-3000:]
    assert failed and all("rms_norm" in line and "add_rms_norm" not in line for line in failed), "\n".join(failed)
    assert "reproduce: python -m operators.run" in completed.stdout
    self_tests = sum(line.startswith("def test") for line in Path("suites/test_report.py").read_text().splitlines())
    assert f"backend '{module}': {self_tests} self-tests of the harness left out" in completed.stdout, \
        completed.stdout[-2000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "fail" and document["config"]["backend"] == module
    assert {c["operator"] for c in document["cases"] if c["verdict"] == "fail"} == {"rms_norm"}
