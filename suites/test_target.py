"""The --device and --backend options the commands share (operators/core/target.py): a bad one is the same
one-line usage error with exit 2 from operators.run, operators.integrate and operators.bench, and
pytest's own usage error (exit 4) from the plugin."""

import subprocess
import sys

import pytest

from operators.bench.run import main as bench_main
from operators.core.device import Device
from operators.core.exits import EXIT_USAGE
from operators.integrate import main as integrate_main
from operators.run import main as run_main

COMMANDS = {"operators.run": run_main, "operators.integrate": integrate_main, "operators.bench": bench_main}
PYTEST_USAGE_ERROR = 4


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("arguments, words", [
    (["--device", "tpu"], "unknown device 'tpu'; expected one of cpu, nvidia"),
    (["--backend", "no_such_package.backend"], "backend module 'no_such_package.backend' could not be imported"),
    (["--backend", "json"], "backend module 'json' defines no function backend(device)"),
])
def test_a_bad_device_or_backend_is_one_line_and_exit_2(capsys, tmp_path, command, arguments, words):
    if command == "operators.bench" and "--backend" in arguments and not Device.NVIDIA.availability().available:
        pytest.skip("the benchmark loads a backend on an available GPU only")
    assert COMMANDS[command]([*arguments, "--output", str(tmp_path / "x.json")]) == EXIT_USAGE
    assert words in one_error_line(capsys)


def test_the_benchmark_refuses_the_cpu_as_a_usage_error(capsys):
    assert bench_main(["--device", "cpu"]) == EXIT_USAGE
    assert "benchmark mode times GPU kernels" in one_error_line(capsys)


@pytest.mark.slow
@pytest.mark.parametrize("arguments, words", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--backend", "no_such_package.backend"], "backend module 'no_such_package.backend' could not be imported"),
])
def test_the_pytest_plugin_reports_the_same_error_as_pytests_usage_error(arguments, words):
    completed = subprocess.run([sys.executable, "-m", "pytest", "suites/test_operators.py", "-q", "-p",
                                "no:cacheprovider", "-o", "addopts=", *arguments],
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == PYTEST_USAGE_ERROR and words in completed.stderr, completed.stderr[-2000:]
