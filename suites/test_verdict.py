"""The metrics and the error budget themselves, on values whose answers are known by construction."""

import math

import pytest
import torch

from operators.core.budget import Budget, EXACT
from operators.core.dtypes import DType
from operators.core.metrics import budget_checks, cosine, error_metrics, ulp_of


@pytest.mark.parametrize("dtype, spacing", [(DType.BF16, 2**-7), (DType.F16, 2**-10), (DType.F32, 2**-23)])
def test_ulp_at_one_is_machine_epsilon(dtype, spacing):
    assert ulp_of(torch.tensor([1.0, 1.5, -1.0], dtype=torch.float64), dtype).tolist() == [spacing] * 3


def test_ulp_of_subnormals_is_the_smallest_subnormal():
    assert ulp_of(torch.tensor([0.0, 1e-8], dtype=torch.float64), DType.F16).tolist() == [2**-24, 2**-24]


def test_metrics_find_a_single_planted_error():
    ref = torch.linspace(-3, 3, 60, dtype=torch.float64).reshape(6, 10)
    out = ref.clone()
    out[4, 7] += 0.25
    m = error_metrics(out, ref, DType.F32)
    assert m.max_abs == pytest.approx(0.25) and m.max_abs_index == (4, 7)
    assert m.mismatch_fraction == pytest.approx(1 / 60)
    assert m.rel_l2 == pytest.approx(0.25 / ref.norm().item())
    assert m.ulp_max == pytest.approx(0.25 / 2 ** (math.floor(math.log2(abs(ref[4, 7].item()))) - 23))


def test_cosine_is_blind_to_scale_which_is_why_it_is_not_the_gate():
    ref = torch.randn(1000, dtype=torch.float64)
    assert cosine(ref * 1.1, ref) == pytest.approx(1.0)
    checks = budget_checks(error_metrics(ref * 1.1, ref, DType.BF16), error_metrics(ref, ref, DType.BF16),
                           Budget(), DType.BF16)
    assert not any(c.passed for c in checks)


def test_nonfinite_elements_are_left_out_of_the_errors():
    ref = torch.tensor([1.0, math.inf, 2.0], dtype=torch.float64)
    out = torch.tensor([1.0, math.inf, 2.0], dtype=torch.float64)
    assert error_metrics(out, ref, DType.F16).max_abs == 0


def test_the_floor_admits_a_correct_rounding_and_no_more():
    """A float32 result within the floor passes an exact baseline; one 10x the floor fails it."""
    ref = torch.randn(4096, dtype=torch.float64)
    rounded = ref.float().double()
    exact = error_metrics(ref, ref, DType.F32)
    assert all(c.passed for c in budget_checks(error_metrics(rounded, ref, DType.F32), exact, Budget(), DType.F32))
    off = ref * (1 + 50 * DType.F32.eps)
    assert not all(c.passed for c in budget_checks(error_metrics(off, ref, DType.F32), exact, Budget(), DType.F32))


def test_the_exact_budget_admits_nothing_but_equality():
    ref = torch.randn(10, dtype=torch.float64)
    exact = error_metrics(ref, ref, DType.BF16)
    assert all(c.passed for c in budget_checks(exact, exact, EXACT, DType.BF16))
    nudged = ref.clone()
    nudged[3] = torch.nextafter(nudged[3], torch.tensor(math.inf, dtype=torch.float64))
    assert not all(c.passed for c in budget_checks(error_metrics(nudged, ref, DType.BF16), exact, EXACT, DType.BF16))


def test_a_budget_needs_a_justification():
    with pytest.raises(ValueError, match="justification"):
        Budget(k=3, justification="")


def test_cosine_of_a_zero_output_where_the_reference_underflows_is_one():
    ref = torch.full((8,), 1e-30, dtype=torch.float64)
    assert error_metrics(torch.zeros(8), ref, DType.F16).cosine == 1.0
    assert error_metrics(torch.zeros(8), ref, DType.F32).cosine == 0.0


def test_budget_use_is_the_error_over_its_limit():
    from operators.core.metrics import BudgetCheck
    from operators.core.result import OutputResult

    ref = torch.linspace(-1, 1, 50, dtype=torch.float64)
    metrics = error_metrics(ref, ref, DType.F32)
    checks = (BudgetCheck("max_abs", 3e-3, 1e-3, 4e-3), BudgetCheck("rel_l2", 1e-3, 1e-3, 1e-3))
    result = OutputResult("out", DType.F32, metrics, metrics, checks)
    assert result.budget_use == pytest.approx(1.0)  # the rel_l2 check sits exactly at its limit
    over = OutputResult("out", DType.F32, metrics, metrics, (BudgetCheck("max_abs", 5e-3, 1e-3, 4e-3),))
    assert over.budget_use == pytest.approx(1.25) and not over.checks[0].passed
