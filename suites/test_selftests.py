"""The harness has teeth: each deliberately wrong kernel fails, and the torch control passes."""

import importlib
import json
import sys
from pathlib import Path

import pytest

from operators.backends import load_backend
from operators.core.device import Device
from operators.core.registry import OPERATOR_NAMES
from suites.child_process import run_child
from suites.judged_once import Implementation, judge_operator
from suites.wrong_kernels import WRONG_KERNEL_MODULES

# Enough cases per dtype that each regime that exposes a bug is drawn (derandomised by the seed).
SELFTEST_EXAMPLES = 24
CONTROL = "torch"


def runs_on(module, device: Device) -> bool:
    devices = getattr(module, "DEVICES", None)
    return not devices or device.value in devices


def implementations(operator: str, device: Device) -> list[Implementation]:
    """The torch control and every wrong kernel of `operator` that runs on `device`."""
    control = load_backend(CONTROL, device)
    found = [Implementation(CONTROL, control.kernel(operator), control.name, None)]
    for name in WRONG_KERNEL_MODULES:
        module = importlib.import_module(f"suites.wrong_kernels.{name}")
        if module.WRONG_OPERATOR == operator and runs_on(module, device):
            backend = module.backend(device)
            found.append(Implementation(name, backend.kernel(operator), backend.name, module.EXPECTED_REASON))
    return found


@pytest.fixture(scope="module")
def judged(harness):
    """operator -> {implementation: failure reasons}, judged once per module for all its implementations."""
    cache: dict[str, dict[str, list[str]]] = {}

    def reasons(operator: str) -> dict[str, list[str]]:
        if operator not in cache:
            cache[operator] = judge_operator(operator, implementations(operator, harness.device), harness.device,
                                             SELFTEST_EXAMPLES)
        return cache[operator]
    return reasons


@pytest.mark.parametrize("module_name", WRONG_KERNEL_MODULES)
def test_wrong_kernel_is_caught(harness, judged, module_name):
    module = importlib.import_module(f"suites.wrong_kernels.{module_name}")
    if not runs_on(module, harness.device):
        pytest.skip(f"{module_name} is a kernel for {', '.join(module.DEVICES)}; this run is on {harness.device.value}")
    reasons = judged(module.WRONG_OPERATOR)[module_name]
    assert reasons, f"{module_name}: the wrong {module.WRONG_OPERATOR} kernel passed every case"
    assert any(module.EXPECTED_REASON in r for r in reasons), (
        f"{module_name}: failed, but never with '{module.EXPECTED_REASON}': {reasons[:3]}")


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_torch_control_passes(judged, operator):
    assert judged(operator)[CONTROL] == []


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
    unexpected = [line for line in failed if "rms_norm" not in line or "add_rms_norm" in line]
    errors = [line for line in completed.stdout.splitlines() if "Error" in line and "rms_norm" not in line]
    assert failed and not unexpected, "\n".join(unexpected + ["errors:"] + errors[:20])
    assert "reproduce: python -m operators.run" in completed.stdout
    self_tests = sum(line.startswith("def test") for line in Path("suites/test_report.py").read_text().splitlines())
    assert f"backend '{module}': {self_tests} self-tests of the harness left out" in completed.stdout, \
        completed.stdout[-2000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "fail" and document["config"]["backend"] == module
    assert {c["operator"] for c in document["cases"] if c["verdict"] == "fail"} == {"rms_norm"}
