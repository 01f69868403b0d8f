"""The benchmark compares like with like: each PyTorch baseline computes what the operator's
reference computes (so a faster baseline is not one that does less), and the workloads build."""

import pytest
import torch

from operators import (add_rms_norm, argmax, attention_decode, attention_decode_paged, attention_prefill, embedding,
                       linear, moe_experts, moe_router, random_sample, rms_norm, rope, softmax, swiglu)
from operators.bench.torch_baselines import baselines
from operators.bench.workloads import full_contiguous_decode, full_paged_decode, workloads
from operators.checker import build_inputs
from operators.dtypes import DType
from operators.registry import get_spec
from operators.strategies import allowed_combos

F32 = DType.F32


def f32(operator):
    return next(c for c in allowed_combos(get_spec(operator), F32) if all(d is not DType.I32 for d in c.values()))


SMALL_CASES = {
    "embedding": lambda: embedding.make_case(f32("embedding"), (5,), 50, 16),
    "rms_norm": lambda: rms_norm.make_case(f32("rms_norm"), (3, 64)),
    "add_rms_norm": lambda: add_rms_norm.make_case(f32("add_rms_norm"), (3, 64)),
    "linear": lambda: linear.make_case(f32("linear"), 3, 32, 48, False),
    "rope": lambda: rope.make_case(f32("rope"), 5, 4, 32),
    "swiglu": lambda: swiglu.make_case(f32("swiglu"), (3, 40)),
    "softmax": lambda: softmax.make_case("softmax", f32("softmax"), (3, 100)),
    "causal_softmax": lambda: softmax.make_case("causal_softmax", f32("causal_softmax"), (2, 9, 9)),
    "attention_prefill": lambda: attention_prefill.make_case(f32("attention_prefill"), 9, 8, 2, 16),
    "attention_decode": lambda: attention_decode.make_case(f32("attention_decode"), 3, 1, 20, 8, 2, 16),
    "attention_decode_paged": lambda: attention_decode_paged.make_case(f32("attention_decode_paged"), 3, 1, 2, 16, 8, 2,
                                                                       16),
    "argmax": lambda: argmax.make_case(f32("argmax"), 3, 100),
    "moe_router": lambda: moe_router.make_case(f32("moe_router"), 5, 16, 4, 32),
    "random_sample": lambda: random_sample.make_case(f32("random_sample"), 6, 100, temperature=0.7, top_k=10,
                                                     top_p=0.9),
    "moe_experts": lambda: moe_experts.make_case(f32("moe_experts"), 5, 8, 2, 32, 24),
}
PREPARE = {"attention_decode": full_contiguous_decode, "attention_decode_paged": full_paged_decode}
# Outputs of each baseline, in the order it returns them.
RETURNS = {"add_rms_norm": ("sum", "out"), "moe_router": ("weights", "ids")}


# A baseline that computes another function is off by O(1); float32 rounding of the same function
# stays far below this (rope angles at positions up to 4096 carry ~2e-4 rad, as in Hugging Face).
REL_L2_LIMIT = 1e-3


def rel_l2(value: torch.Tensor, expected: torch.Tensor) -> float:
    return float((value.double() - expected).norm() / expected.norm().clamp_min(1e-300))


@pytest.mark.parametrize("operator", sorted(SMALL_CASES))
def test_baseline_computes_the_reference(operator):
    spec, case = get_spec(operator), SMALL_CASES[operator]()
    inputs = {n: p.view for n, p in build_inputs(spec, case, torch.device("cpu")).items()}
    inputs = PREPARE.get(operator, lambda i: i)(inputs)
    precise = {n: t.double() if t.is_floating_point() else t for n, t in inputs.items()}
    for name, baseline in baselines(operator, inputs, case.attributes).items():
        result = baseline()
        produced = dict(zip(RETURNS.get(operator, tuple(spec.outputs)), result if isinstance(result, tuple) else (result,)))
        decisions = {n: produced[n] for n in spec.decisions} if spec.decisions else None
        if decisions:
            assert spec.judge(decisions, precise, case.attributes, case.dtype) == [], f"{operator} baseline '{name}'"
        reference = spec.run_reference(precise, case.attributes, torch.float64, decisions)
        for output in spec.numeric_outputs:
            value, expected = produced[output], reference[output]
            assert value.shape == expected.shape, f"{operator} {name} '{output}': shape {value.shape}"
            assert rel_l2(value, expected) < REL_L2_LIMIT, f"{operator} baseline '{name}' output '{output}'"


def test_every_workload_builds_a_case_in_its_contract():
    found = workloads()
    assert {w.operator for w in found} >= set(SMALL_CASES) | {"kv_cache_write", "kv_cache_write_paged",
                                                              "random_sample"}
    for workload in found:
        spec = get_spec(workload.operator)
        dtypes = {n: t.dtype for n, t in {**workload.case.inputs, **workload.case.outputs}.items()}
        assert spec.allows(dtypes), workload.name
