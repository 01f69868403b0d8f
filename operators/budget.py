"""The error budget of VERDICT.md: e(out, ref) <= k * e(base, ref) + floor, for max abs and rel L2."""

from __future__ import annotations

from dataclasses import dataclass

from operators.dtypes import DType

FLOAT32_EPS = DType.F32.eps

DEFAULT_JUSTIFICATION = (
    "default: twice the largest error among the correct same-dtype computations (Hugging Face's "
    "formula, and for softmax and attention a flash-style online one: block maxima, exp2, probabilities "
    "rounded before P@V), plus one ulp of the output dtype and four float32 ulps (fast intrinsics such "
    "as rsqrtf/expf) at the output scale"
)


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

    def max_abs_floor(self, dtype: DType, scale: float, sensitivity: float = 0.0) -> float:
        return ((self.floor_ulps * dtype.eps + self.f32_ulps * FLOAT32_EPS) * scale
                + self.sensitivity_ulps * FLOAT32_EPS * sensitivity)

    def rel_l2_floor(self, dtype: DType) -> float:
        # Half the unit roundoff of the output dtype (the unit roundoff is eps / 2): about the RMS
        # relative error of a correct rounding.
        return self.floor_ulps * dtype.eps / 4 + self.f32_ulps * FLOAT32_EPS

    def to_json(self) -> dict:
        return {"k": self.k, "floor_ulps": self.floor_ulps, "f32_ulps": self.f32_ulps,
                "sensitivity_ulps": self.sensitivity_ulps, "justification": self.justification}


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
