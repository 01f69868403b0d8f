"""The benchmark compares like with like: every baseline of every workload, built at small float32
shapes, computes what the operator's reference computes (so a faster baseline is not one that does
less); and the Qwen3 workloads build cases inside their operators' contracts."""

import pytest
import torch

from operators.bench.shapes import small_f32
from operators.bench.table import baselines, bench_table
from operators.bench.workloads import workloads
from operators.core.checker import build_inputs
from operators.core.registry import get_spec

# A baseline that computes another function is off by O(1); float32 rounding of the same function
# stays far below this (rope angles at positions up to 4096 carry ~2e-4 rad, as in Hugging Face).
REL_L2_LIMIT = 1e-3


def rel_l2(value: torch.Tensor, expected: torch.Tensor) -> float:
    return float((value.double() - expected).norm() / expected.norm().clamp_min(1e-300))


def small_inputs(workload):
    """The workload's inputs on the CPU, and its outputs zeroed (a cache written in place starts as
    the reference's empty cache)."""
    spec, case = get_spec(workload.operator), workload.case
    inputs = {n: p.view for n, p in build_inputs(spec, case, torch.device("cpu")).items()}
    inputs = workload.prepare(inputs) if workload.prepare else inputs
    outputs = {n: torch.zeros(t.shape, dtype=t.dtype.torch) for n, t in case.outputs.items()}
    return inputs, outputs


@pytest.mark.parametrize("operator", sorted(bench_table()))
def test_baselines_compute_the_reference(operator):
    for workload in (w for w in workloads(small_f32()) if w.operator == operator):
        baselines_compute_the_reference(workload)


def baselines_compute_the_reference(workload):
    spec, case = get_spec(workload.operator), workload.case
    inputs, outputs = small_inputs(workload)
    precise = {n: t.double() if t.is_floating_point() else t for n, t in inputs.items()}
    for name, baseline in baselines(workload.operator, {**inputs, **outputs}, case.attributes).items():
        produced = baseline()
        assert set(produced) == set(spec.outputs), f"{workload.name} baseline '{name}' returns {sorted(produced)}"
        decisions = {n: produced[n] for n in spec.decisions} if spec.decisions else None
        if decisions:
            assert spec.judge(decisions, precise, case.attributes, case.dtype) == [], f"{workload.name} '{name}'"
        reference = spec.run_reference(precise, case.attributes, torch.float64, decisions)
        for output in spec.numeric_outputs:
            value, expected = produced[output], reference[output]
            assert value.shape == expected.shape, f"{workload.name} {name} '{output}': shape {value.shape}"
            assert rel_l2(value, expected) < REL_L2_LIMIT, f"{workload.name} baseline '{name}' output '{output}'"


def test_every_workload_builds_a_case_in_its_contract():
    for workload in workloads():
        spec = get_spec(workload.operator)
        dtypes = {n: t.dtype for n, t in {**workload.case.inputs, **workload.case.outputs}.items()}
        assert spec.allows(dtypes), workload.name
