"""The verdict's rules for what correct implementations legitimately differ in (VERDICT.md), each
with a wrong result that still fails: ensemble baselines, the overflow edge, correlated rounding,
ULPs near zero, tied router experts, the rope angle, finite-only norm inputs."""

import math

import pytest
import torch

from operators.backends import load_backend
from operators.core.budget import ROPE, Budget, Sensitivity
from operators.core.case import Case, Regime
from operators.core.checker import check_case, parity_reasons, prepare_case, run_kernel
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.dtypes import DType
from operators.core.kernel import Kernel
from operators.core.metrics import HUGGING_FACE, budget_checks, error_metrics
from operators.core.registry import get_spec
from operators.core.strategies import FINITE_REGIMES

TIED_AT_ZERO = {"operator": "moe_router", "inputs": {"x": {"shape": [33, 256], "dtype": "float32"},
                                                      "gate_weight": {"shape": [128, 256], "dtype": "float32"}},
                "outputs": {"weights": {"shape": [33, 8], "dtype": "float32"}, "ids": {"shape": [33, 8], "dtype": "int64"}},
                "attributes": {"top_k": 8, "norm_topk_prob": True}, "regime": "outlier_channels", "seed": 157}


def test_the_budget_takes_the_worst_correct_computation_and_names_it():
    ref = torch.linspace(-2, 2, 101, dtype=torch.float64)
    near, far = ref + 1e-6, ref + 4e-6
    out = ref + 7e-6
    baselines = {HUGGING_FACE: error_metrics(near, ref, DType.F32), "flash": error_metrics(far, ref, DType.F32)}
    checks = budget_checks(error_metrics(out, ref, DType.F32), baselines, Budget(), DType.F32)
    assert all(c.passed and c.baseline_source == "flash" for c in checks)
    assert not all(c.passed for c in budget_checks(error_metrics(ref + 2e-5, ref, DType.F32), baselines, Budget(),
                                                    DType.F32))


def test_inf_at_the_overflow_edge_is_correct_only_there():
    ref = torch.tensor([65510.0, 60000.0, 1.0], dtype=torch.float64)  # 65510 rounds to 65504 in float16
    out = torch.tensor([math.inf, math.inf, 1.0], dtype=torch.float16)
    reasons = parity_reasons("out", out, ref, DType.F16)
    assert len(reasons) == 1 and "Inf parity broken at 1 positions" in reasons[0] and "[1]" in reasons[0]
    overflowing_baseline = torch.tensor([65504.0, math.inf, 1.0], dtype=torch.float16)
    assert parity_reasons("out", out, ref, DType.F16, (overflowing_baseline,)) == []
    wrong_sign = torch.tensor([-math.inf, 60000.0, 1.0], dtype=torch.float16)
    assert parity_reasons("out", wrong_sign, ref, DType.F16, (overflowing_baseline,))  # never the wrong sign


def test_a_whole_row_rounding_the_other_way_is_within_the_floor_three_ulps_are_not():
    """Rows of equal values round together: with values exactly representable in float16 (Hugging
    Face's own error 0, as RMSNorm of constant rows gives) one row of 7 a whole ulp off (a correct
    kernel whose float32 value sits next to a midpoint) passes; every row three ulps off fails."""
    ref = (torch.full((7, 64), 0.51, dtype=torch.float64) + torch.arange(7, dtype=torch.float64)[:, None] / 64)
    ref = ref.to(torch.float16).double()
    flipped = ref.to(torch.float16)
    flipped[:1] = torch.nextafter(flipped[:1], torch.tensor(math.inf, dtype=torch.float16))
    exact = error_metrics(ref, ref, DType.F16)
    assert all(c.passed for c in budget_checks(error_metrics(flipped, ref, DType.F16), exact, Budget(), DType.F16))
    far = ref + 3 * (2.0 ** -11)
    assert not all(c.passed for c in budget_checks(error_metrics(far, ref, DType.F16), exact, Budget(), DType.F16))


def test_ulps_near_zero_are_counted_at_a_fraction_of_the_output_scale():
    ref = torch.tensor([1.0, 1e-30, -0.5], dtype=torch.float64)
    out = ref + torch.tensor([0.0, 1e-8, 0.0], dtype=torch.float64)
    metrics = error_metrics(out, ref, DType.F32)
    assert metrics.ulp_max == pytest.approx(1e-8 / 2.0 ** (-8 - 23))  # the float32 ulp at 1/256 of the scale 1.0
    assert metrics.ulp_max < 100


def test_router_experts_tied_at_zero_float32_probability_may_swap_a_clear_top_expert_may_not():
    case = Case.from_json(TIED_AT_ZERO)
    spec = get_spec("moe_router")
    for name in ("torch", "native"):
        result = check_case(spec, case, load_backend(name, Device.CPU).kernel("moe_router"), Device.CPU, name)
        assert result.passed, result.reasons
    prepared = prepare_case(spec, case, Device.CPU)
    control = load_backend("torch", Device.CPU).kernel("moe_router")

    def demote_first_choice(*, weights, ids, x, gate_weight, top_k, norm_topk_prob):
        control(weights=weights, ids=ids, x=x, gate_weight=gate_weight, top_k=top_k, norm_topk_prob=norm_topk_prob)
        ids[0, 0] = next(e for e in range(128) if e not in ids[0].tolist())

    result = run_kernel(prepared, Kernel("moe_router", demote_first_choice), "planted")
    assert not result.passed and any("token 0" in r for r in result.reasons)


def test_router_experts_whose_probability_may_underflow_float32_tie_at_zero_others_do_not():
    """Token 0's experts 40-43 sit ~103 below the top logit of 200: exactly, their float32
    probabilities are the smallest subnormal, but bf16 logits there are a unit apart and the float32
    softmax of the rounded logits may give 0, tying them with every zero. Token 1's sit 60 below:
    clearly nonzero in float32, so zeros may not replace them; nor may a zero replace expert 13, nor
    one a few rounding units above where float32 underflows."""
    logits = torch.full((2, 128), -100.0, dtype=torch.float64)
    logits[:, 10:14] = torch.tensor([200.0, 199.5, 199.0, 198.0], dtype=torch.float64)
    logits[0, 40:44] = 200.0 - torch.tensor([102.6, 102.7, 102.8, 102.9], dtype=torch.float64)
    logits[1, 40:44] = 200.0 - torch.tensor([60.0, 60.1, 60.2, 60.3], dtype=torch.float64)
    inputs = {"x": logits, "gate_weight": torch.eye(128, dtype=torch.float64)}
    exact = torch.softmax(logits, dim=-1).to(torch.float32)
    assert bool((exact[:, 40:44] > 0).all()) and bool((exact[:, :4] == 0).all())
    judge = get_spec("moe_router").judge

    def verdict(token_0: list[int], token_1: list[int]) -> list[str]:
        return judge({"ids": torch.tensor([token_0, token_1])}, inputs, {"top_k": 8, "norm_topk_prob": True},
                     DType.BF16)

    top, near_zero = [10, 11, 12, 13], [40, 41, 42, 43]
    assert verdict(top + [0, 1, 2, 3], top + near_zero) == []
    assert "token 1:" in " ".join(verdict(top + near_zero, top + [0, 1, 2, 3]))
    assert "token 0:" in " ".join(verdict([10, 11, 12, 0, 1, 2, 3, 4], top + near_zero))

    # Logits near 3000, all bf16 values: rounding moves a difference by at most a bf16 ulp (16) there, so
    # expert 7, 64 below the top, keeps a float32 probability of 1.6e-28 and may not give way to a zero.
    large = torch.full((1, 16), 2800.0, dtype=torch.float64)
    large[0, 3], large[0, 7] = 3008.0, 2944.0
    wide = {"x": large, "gate_weight": torch.eye(16, dtype=torch.float64)}
    attributes = {"top_k": 2, "norm_topk_prob": True}
    assert judge({"ids": torch.tensor([[3, 7]])}, wide, attributes, DType.BF16) == []
    assert judge({"ids": torch.tensor([[3, 0]])}, wide, attributes, DType.BF16)


def test_rope_angle_sensitivity_admits_a_one_ulp_inv_freq_and_not_a_wrong_theta():
    """An inv_freq table one float32 ulp off (powf vs exp2f(log2f)) passes at position 10^5; theta 1e4
    for 1e6 fails."""
    spec = get_spec("rope")
    assert spec.budget is ROPE
    case = next(c for c in draw_cases(spec, Device.CPU, DType.F32, 40, 0) if c.attributes["layout"] == "neox")
    case = Case.from_json({**case.to_json(), "attributes": {**case.attributes, "max_position": 131072}})
    prepared = prepare_case(spec, case, Device.CPU)
    assert isinstance(prepared.sensitivity, Sensitivity) and prepared.sensitivity.peak > 0

    def rotated_with(theta_scale: float, nudge: bool):
        def kernel(*, out, x, positions, theta, layout):
            half = x.shape[-1] // 2
            exponents = torch.arange(0, x.shape[-1], 2, dtype=torch.float32) / x.shape[-1]
            inv_freq = 1.0 / (theta * theta_scale) ** exponents
            if nudge:
                inv_freq = torch.nextafter(inv_freq, torch.tensor(math.inf))
            angles = positions.double()[:, None] * inv_freq.double()[None, :]
            cos, sin = torch.cos(angles)[:, None, :], torch.sin(angles)[:, None, :]
            first, second = x[..., :half].double(), x[..., half:].double()
            out.copy_(torch.cat((first * cos - second * sin, second * cos + first * sin), -1))
        return Kernel("rope", kernel)

    assert run_kernel(prepared, rotated_with(1.0, nudge=True), "one ulp").passed
    assert not run_kernel(prepared, rotated_with(1e-2, nudge=False), "theta 1e4").passed


@pytest.mark.parametrize("operator", ["rms_norm", "add_rms_norm"])
def test_norms_are_never_given_minus_infinity(operator):
    assert Regime.MASKED not in FINITE_REGIMES
    cases = draw_cases(get_spec(operator), Device.CPU, DType.F16, 60, 3)
    assert cases and all(c.regime is not Regime.MASKED for c in cases)
