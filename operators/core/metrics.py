"""Error metrics of one output against the float64 reference, and the budget verdict on them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch

from operators.core.budget import NO_SENSITIVITY, Budget, Sensitivity
from operators.core.dtypes import DType

HUGGING_FACE = "hugging_face"  # the same-dtype baseline every operator has: HF's formula in the working dtype
# ULPs are counted at each element's magnitude, but never below this fraction of the output's largest
# magnitude: near zero (cancellation, tiny probabilities) an ulp is not a meaningful unit of error.
ULP_SCALE_FRACTION = 2.0 ** -8

# torch.testing.assert_close defaults: the tolerance users know, used for mismatch_fraction only.
ASSERT_CLOSE_TOLERANCES = {DType.F32: (1.3e-6, 1e-5), DType.F16: (1e-3, 1e-5), DType.BF16: (1.6e-2, 1e-5)}


@dataclass(frozen=True)
class ErrorMetrics:
    cosine: float
    max_abs: float
    max_abs_index: tuple[int, ...]
    max_rel: float
    rel_l2: float
    ulp_max: float
    ulp_p99: float
    mismatch_fraction: float
    scale: float  # max |ref| over finite elements
    # The relative L2 size of half an ulp of the output dtype at every reference element: what
    # rounding a correct result to the output dtype can cost at worst (the rel_l2 floor).
    rounding_rel_l2: float = 0.0
    ref_norm: float = 0.0  # L2 norm of the reference over the finite elements

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else _finite_or_none(v)) for k, v in asdict(self).items()}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def ulp_of(values: torch.Tensor, dtype: DType) -> torch.Tensor:
    """Spacing of `dtype` at each value's magnitude (float64 in, float64 out)."""
    magnitude = values.abs()
    _, exponent = torch.frexp(magnitude)
    spacing = torch.ldexp(torch.ones_like(values), exponent - dtype.mantissa_bits)
    subnormal = magnitude < torch.finfo(dtype.torch).smallest_normal  # zero included
    return torch.where(subnormal, torch.full_like(spacing, dtype.smallest_subnormal), spacing)


def error_metrics(out: torch.Tensor, ref: torch.Tensor, dtype: DType) -> ErrorMetrics:
    """Metrics over the elements where the reference (rounded to dtype) and out are finite (the
    scalars are read back from the device together: one synchronisation)."""
    ref = ref.detach().to(torch.float64)
    out = out.detach().to(ref.device, torch.float64)
    finite = torch.isfinite(ref.to(dtype.torch)) & torch.isfinite(out) & torch.isfinite(ref)
    o, r = out[finite], ref[finite]
    if r.numel() == 0:
        return ErrorMetrics(1.0, 0.0, (), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    diff, magnitude = (o - r).abs(), r.abs()
    scale = magnitude.max()
    significant = magnitude > dtype.eps * scale  # relative error is meaningless near zero
    relative = torch.where(significant, diff / torch.where(significant, magnitude, 1.0), 0.0)
    ulps = diff / ulp_of(magnitude.clamp_min(scale * ULP_SCALE_FRACTION), dtype)
    rtol, atol = ASSERT_CLOSE_TOLERANCES[dtype]
    ref_norm, out_norm = r.norm(), o.norm()
    p99 = torch.kthvalue(ulps.flatten(), max(1, math.ceil(0.99 * ulps.numel()))).values
    flat_index = torch.argmax(torch.where(finite, (out - ref).abs(), torch.zeros_like(out)))
    (scale, max_abs, max_rel, diff_norm, ref_norm, out_norm, dot, ulp_max, ulp_p99, mismatch, rounding,
     rounded_peak, out_peak, flat_index) = torch.stack([
        scale, diff.max(), relative.max(), diff.norm(), ref_norm, out_norm, o @ r, ulps.max(), p99,
        (diff > atol + rtol * magnitude).double().mean(), (ulp_of(r, dtype) / 2).norm(),
        r.to(dtype.torch).abs().max().double(), o.abs().max(), flat_index.double()]).tolist()
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(int(flat_index)), tuple(out.shape))) if out.dim() else ()
    # A reference that underflows to zero in the output dtype is matched exactly by a zero output.
    underflows = rounded_peak == 0 and out_peak == 0
    return ErrorMetrics(
        cosine=1.0 if underflows else cosine_of(dot, out_norm, ref_norm),
        max_abs=max_abs,
        max_abs_index=index,
        max_rel=max_rel,
        rel_l2=diff_norm / ref_norm if ref_norm > 0 else diff_norm,
        ulp_max=ulp_max,
        ulp_p99=ulp_p99,
        mismatch_fraction=mismatch,
        scale=scale,
        rounding_rel_l2=rounding / ref_norm if ref_norm > 0 else 0.0,
        ref_norm=ref_norm,
    )


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return cosine_of(*torch.stack([a @ b, a.norm(), b.norm()]).tolist())


def cosine_of(dot: float, norm_a: float, norm_b: float) -> float:
    if norm_a == 0 and norm_b == 0:
        return 1.0
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return dot / (norm_a * norm_b)


@dataclass(frozen=True)
class BudgetCheck:
    measure: str
    value: float
    baseline: float  # the largest error of the correct same-dtype computations
    limit: float
    baseline_source: str = HUGGING_FACE  # which computation that was

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    @property
    def ratio(self) -> float | None:
        """e(out, ref) / e(base, ref); None when the baseline is exact."""
        return self.value / self.baseline if self.baseline > 0 else (0.0 if self.value == 0 else None)

    def describe(self) -> str:
        return (f"{self.measure} {self.value:.3e} exceeds its budget {self.limit:.3e} "
                f"(same-dtype baseline {self.baseline:.3e}, {self.baseline_source})")


def budget_checks(out: ErrorMetrics, baselines: ErrorMetrics | Mapping[str, ErrorMetrics], budget: Budget,
                  dtype: DType, sensitivity: Sensitivity = NO_SENSITIVITY) -> list[BudgetCheck]:
    """`baselines`: the correct same-dtype computations by name (one ErrorMetrics is Hugging Face's);
    each measure is budgeted from the largest error among them."""
    if isinstance(baselines, ErrorMetrics):
        baselines = {HUGGING_FACE: baselines}

    def worst(measure: str) -> tuple[str, float]:
        return max(((name, getattr(m, measure)) for name, m in baselines.items()), key=lambda item: item[1])

    (abs_source, base_abs), (l2_source, base_l2) = worst("max_abs"), worst("rel_l2")
    return [
        BudgetCheck("max_abs", out.max_abs, base_abs,
                    budget.k * base_abs + budget.max_abs_floor(dtype, out.scale, sensitivity), abs_source),
        BudgetCheck("rel_l2", out.rel_l2, base_l2,
                    budget.k * base_l2 + budget.rel_l2_floor(
                        out.rounding_rel_l2, sensitivity.norm / out.ref_norm if out.ref_norm > 0 else 0.0),
                    l2_source),
    ]
