"""The error budget of VERDICT.md: e(out, ref) <= k * e(base, ref) + floor, for max abs and rel L2."""

from __future__ import annotations

from dataclasses import dataclass

from operators.core.dtypes import DType

FLOAT32_EPS = DType.F32.eps

DEFAULT_JUSTIFICATION = (
    "default: twice the largest error among the correct same-dtype computations (Hugging Face's "
    "formula, and for softmax and attention a flash-style online one: block maxima, exp2, probabilities "
    "rounded before P@V; for linear and the router's gate a float32 GEMM adding one product at a time, "
    "the longest rounding chain a correct GEMM has), plus one ulp of the output dtype and four float32 ulps (fast intrinsics such "
    "as rsqrtf/expf) at the output scale"
)


@dataclass(frozen=True)
class Sensitivity:
    """How far one float32 rounding of an intermediate moves the output, in units of that rounding:
    `peak` over the output elements (the max-abs term), `norm` their L2 norm (the rel-L2 term)."""

    peak: float = 0.0
    norm: float = 0.0


NO_SENSITIVITY = Sensitivity()


@dataclass(frozen=True)
class Budget:
    k: float = 2.0
    floor_ulps: float = 1.0  # ulps of the output dtype, at the scale of the reference
    f32_ulps: float = 4.0  # float32 ulps for the computation itself
    justification: str = DEFAULT_JUSTIFICATION
    # float32 ulps at the operator's sensitivity (OperatorSpec.sensitivity): the output error that one
    # unavoidable float32 rounding of an intermediate (an attention score) causes downstream.
    sensitivity_ulps: float = 0.0

    def __post_init__(self) -> None:
        if min(self.k, self.floor_ulps, self.f32_ulps, self.sensitivity_ulps) < 0:
            raise ValueError(f"budget terms must be >= 0: {self}")
        if not self.justification:
            raise ValueError("a budget needs a justification")

    def max_abs_floor(self, dtype: DType, scale: float, sensitivity: Sensitivity = NO_SENSITIVITY) -> float:
        return ((self.floor_ulps * dtype.eps + self.f32_ulps * FLOAT32_EPS) * scale
                + self.sensitivity_ulps * FLOAT32_EPS * sensitivity.peak)

    def rel_l2_floor(self, rounding_rel_l2: float, sensitivity_rel_l2: float = 0.0) -> float:
        """`rounding_rel_l2`: half an ulp of the output dtype at every reference element, in relative
        L2 (ErrorMetrics.rounding_rel_l2). Not the typical RMS of a rounding (about a quarter ulp):
        in rows of equal values (or any correlated output) every element rounds the same way, and a
        correct kernel whose float32 value sits one float32 ulp from Hugging Face's lands a whole
        row on the other neighbour of a midpoint."""
        return (self.floor_ulps * rounding_rel_l2 + self.f32_ulps * FLOAT32_EPS
                + self.sensitivity_ulps * FLOAT32_EPS * sensitivity_rel_l2)

    def to_json(self) -> dict:
        return {"k": self.k, "floor_ulps": self.floor_ulps, "f32_ulps": self.f32_ulps,
                "sensitivity_ulps": self.sensitivity_ulps, "justification": self.justification}


ROPE = Budget(
    sensitivity_ulps=2.0,
    justification=(
        "default, plus 2 float32 ulps of |angle| * |x pair| per element: the angle pos * inv_freq is a "
        "float32 value in Qwen3 (inv_freq from a power and a reciprocal, then a product with the position), "
        "and correct implementations (powf or exp2f(log2f), a table, a fused multiply) differ in it by "
        "about 2 ulps of the angle, which at positions of 10^5 turns the pair by 10^-2 radians"),
)


EXACT = Budget(k=0.0, floor_ulps=0.0, f32_ulps=0.0,
               justification="exact: the operator only moves values, so any difference is a bug")


ATTENTION = Budget(
    sensitivity_ulps=2.0,
    justification=(
        "default, plus 2 float32 ulps of max|score| * max|v|: a score is at best rounded to float32 "
        "(half an ulp of |score|), and the softmax Jacobian and P@V carry that to the output at most "
        "2 * max|v| times over; with scores of 30-100 this, not the output's ulp, bounds what two "
        "correct float32 kernels (eager and SDPA) differ by"),
)
