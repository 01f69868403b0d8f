"""The C kernels against PyTorch's CPU operators at decode and prefill sizes (Qwen3-0.6B, float32),
and the harness's own costs: per case, drawing it, its reference and baselines, the verdict; once per operator and
dtype, the search for the boundary classes the drawn cases missed; once per operator and process, the sample that
finds which boundary classes it can reach.

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
from operators.core.drawing import boundary_cases, dtype_seed, reachable_boundaries, reachable_sample, sample
from operators.core.profiles import examples
from operators.core.dtypes import DType
from operators.core.registry import OPERATOR_NAMES, get_spec

HARNESS_STAGES = ("draw", "reference", "verdict", "boundaries", "reachable")


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
    """What a ci-profile run in bf16 pays for each operator. Per case: drawing (the profile's cases drawn
    at once, `extra_info["cases"]` of them, as a run draws them), the reference and the verdict. Once per
    operator and dtype: the search for a case of each boundary class the drawn cases missed. Once per
    operator and process: the sample that finds which boundary classes the operator can reach."""
    spec, kernel = get_spec(operator), cpu.backend.kernel(operator)
    count, seed = examples("ci"), dtype_seed(0, DType.BF16)
    drawn = sample(spec, Device.CPU, DType.BF16, count, seed)
    hit = {label for case in drawn for label in spec.boundary_labels(case)}
    missed = [label for label in reachable_boundaries(spec, Device.CPU) if label not in hit]
    prepared = prepare_case(spec, drawn[0], Device.CPU)
    benchmark.group = f"harness {operator}"
    stages = {"draw": lambda: sample(spec, Device.CPU, DType.BF16, count, seed),
              "reference": lambda: prepare_case(spec, drawn[0], Device.CPU),
              "verdict": lambda: run_kernel(prepared, kernel, cpu.backend.name),
              "boundaries": lambda: boundary_cases(spec, Device.CPU, DType.BF16, 0, missed),
              "reachable": lambda: reachable_sample(spec, Device.CPU)}
    if stage == "draw":
        benchmark.extra_info["cases"] = count
    benchmark(stages[stage])


def test_the_table_puts_each_kernel_beside_pytorchs_best_and_the_boundary_search_apart():
    from reports.cpu_benchmark import markdown

    def entry(name, group, median):
        return {"name": name, "group": group, "stats": {"median": median}}
    document = {"datetime": "2026-12-01", "machine_info": {"cpu": {"brand_raw": "a CPU"}}, "benchmarks": [
        entry("test_native[rms_norm_T=1]", "rms_norm T=1", 2e-6),
        entry("test_pytorch[rms_norm_T=1-eager]", "rms_norm T=1", 5e-6),
        entry("test_pytorch[rms_norm_T=1-compiled]", "rms_norm T=1", 3e-6),
        *[entry(f"test_harness_cost_per_case[rms_norm-{stage}]", "harness rms_norm", seconds)
          for stage, seconds in [("draw", 8e-3), ("reference", 2e-3), ("verdict", 3e-3), ("boundaries", 4e-2),
                                 ("reachable", 0.25)]]]}
    document["benchmarks"][3]["extra_info"] = {"cases": 8}  # the draw of 8 cases
    table = markdown(document, "run.json")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]
    assert ["rms_norm T=1", "2.0", "compiled", "3.0", "1.50x"] in rows
    assert ["operator", "draw us/case", "reference us/case", "verdict us/case", "boundary search us",
            "reachable sample us"] in rows
    assert ["rms_norm", "1,000.0", "2,000.0", "3,000.0", "40,000.0", "250,000.0"] in rows
