"""The C kernels against PyTorch's CPU operators at decode and prefill sizes (Qwen3-0.6B, float32),
and the harness's own cost per case: drawing it, its reference and baselines, the verdict.

The native side passes the workload before it is timed; the PyTorch and harness-cost benchmarks
check nothing but that they run. A plain `pytest suites/` runs each benchmark once, untimed (`--benchmark-disable` in the pytest
options), at a few elements per dimension: the code paths work and the native kernel passes. Timed
at the Qwen3 sizes, grouped by workload so each native kernel sits beside its PyTorch candidates:

    pytest suites/test_cpu_benchmark.py --benchmark-enable --benchmark-group-by=group \\
        --benchmark-columns=median,iqr,rounds --benchmark-json cpu-benchmark.json
"""

import math

import pytest
import torch

from operators.bench.shapes import qwen3_cpu, small_f32
from operators.bench.table import baselines
from operators.bench.workloads import workloads
from operators.core.checker import build_inputs, check_case, prepare_case, run_kernel
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.dtypes import DType
from operators.core.registry import OPERATOR_NAMES, get_spec

HARNESS_STAGES = ("draw", "reference", "verdict")


def pytest_generate_tests(metafunc):
    if "workload" not in metafunc.fixturenames:
        return
    options = metafunc.config.getoption
    timed = options("benchmark_enable", default=False) or not options("benchmark_disable", default=True)
    chosen = workloads(qwen3_cpu() if timed else small_f32())
    if "candidate" in metafunc.fixturenames:
        pairs = [(w, name) for w in chosen for name in candidate_names(w.operator)]
        metafunc.parametrize(("workload", "candidate"), pairs,
                             ids=[f"{w.name.replace(' ', '_')}-{name}" for w, name in pairs])
    else:
        metafunc.parametrize("workload", chosen, ids=[w.name.replace(" ", "_") for w in chosen])


def candidate_names(operator):
    """PyTorch's candidates for the operator (their names do not depend on the sizes)."""
    small = next(w for w in workloads(small_f32()) if w.operator == operator)
    inputs, outputs, _ = call_arguments(small)
    return sorted(baselines(operator, {**inputs, **outputs}, small.case.attributes))


@pytest.fixture
def cpu(harness):
    if harness.device is not Device.CPU:
        pytest.skip("the CPU benchmark times the C kernels; a GPU has python -m operators.bench")
    return harness


def call_arguments(workload):
    """The workload's inputs (as the timed calls see them) and poisoned outputs."""
    spec, case = get_spec(workload.operator), workload.case
    inputs = {name: placed.view for name, placed in build_inputs(spec, case, torch.device("cpu")).items()}
    if workload.prepare:
        inputs = workload.prepare(inputs)
    outputs = {name: torch.full(case.outputs[name].shape, math.nan if case.outputs[name].dtype.is_float else -1,
                                dtype=case.outputs[name].dtype.torch) for name in spec.outputs}
    return inputs, outputs, {name: case.attributes[name] for name in spec.attributes}


def test_native(cpu, workload, benchmark):
    kernel = cpu.backend.kernel(workload.operator)
    checked = check_case(get_spec(workload.operator), workload.case, kernel, Device.CPU, cpu.backend.name)
    assert checked.passed, checked.describe_failure()  # only a correct kernel is timed
    inputs, outputs, attributes = call_arguments(workload)
    benchmark.group = workload.name
    benchmark(lambda: kernel(**outputs, **inputs, **attributes))


def test_pytorch(cpu, workload, candidate, benchmark):
    inputs, outputs, _ = call_arguments(workload)
    function = baselines(workload.operator, {**inputs, **outputs}, workload.case.attributes)[candidate]
    benchmark.group = workload.name
    benchmark(function)


@pytest.mark.parametrize("stage", HARNESS_STAGES)
@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_harness_cost_per_case(cpu, operator, stage, benchmark):
    """One ci-profile case of each operator in bf16: what drawing, the reference and the verdict cost."""
    spec, kernel = get_spec(operator), cpu.backend.kernel(operator)
    case = draw_cases(spec, Device.CPU, DType.BF16, 1, 0)[0]
    prepared = prepare_case(spec, case, Device.CPU)
    benchmark.group = f"harness {operator}"
    stages = {"draw": lambda: draw_cases(spec, Device.CPU, DType.BF16, 1, 0),
              "reference": lambda: prepare_case(spec, case, Device.CPU),
              "verdict": lambda: run_kernel(prepared, kernel, cpu.backend.name)}
    benchmark(stages[stage])
