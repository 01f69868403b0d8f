"""Which operator family makes the logits wrong: rerun our model with one family at a time taken from the
torch control backend, and rank the families by how far that brings the prefill and decode-step logits
back within their budgets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from operators.backends.backend import Backend, load_backend
from operators.core.dtypes import DType
from operators.model.compare import PointResult
from operators.model.generate import check_decode, generate_ours
from operators.model.integration import Models, PrefillComparison, compare_prefill

FAMILIES = {
    "embedding": ("embedding",),
    "norms": ("rms_norm", "add_rms_norm"),
    "linear": ("linear",),
    "rope": ("rope",),
    "attention": ("attention_prefill", "attention_decode"),
    "kv_cache": ("kv_cache_write",),  # its own family: a write bug shows in decode steps, as a decode bug does
    "mlp": ("swiglu",),
    "moe": ("moe_router", "moe_experts"),
    "lm_head/sampling": ("argmax", "random_sample"),  # plus the linear call whose weight is the head
}
NONE = "(none, as run)"


@dataclass(frozen=True)
class Attribution:
    family: str
    logits_rel_l2: float | None  # prefill logits against the float64 reference, this family from the control
    decode_rel_l2: float | None  # decode-step logits against the float64 prefill of the same tokens
    budget_use: float  # the larger of the two checks' e(ours, ref) / limit: 1 or less passes
    first_failure: str | None  # where the rerun first exceeds the budget, None when it passes

    def to_json(self) -> dict:
        return asdict(self)


def head_linear(backend: Backend, control: Backend, head: torch.Tensor) -> Callable[..., None]:
    """linear that sends only the lm_head projection to the control."""
    def linear(*, out, x, weight, bias=None):
        (control if weight is head else backend).kernel("linear")(out=out, x=x, weight=weight, bias=bias)
    return linear


def replaced(backend: Backend, control: Backend, family: str, head: torch.Tensor) -> Backend:
    functions = {op: control.kernel(op) for op in FAMILIES[family] if control.kernel(op) is not None}
    if family == "lm_head/sampling":
        functions["linear"] = head_linear(backend, control, head)
    return backend.with_kernels(f"{backend.name}+control {family}", functions, implementation="torch control")


def families_used(models: Models) -> list[str]:
    config = models.config
    layers = range(config.num_hidden_layers)
    has_moe, has_dense = any(map(config.layer_is_moe, layers)), not all(map(config.layer_is_moe, layers))
    return [f for f in FAMILIES if not (f == "moe" and not has_moe) and not (f == "mlp" and not has_dense)]


def summary(family: str, prefill: PrefillComparison, decode: PointResult | None, dtype: DType) -> Attribution:
    logits = next(r for r in prefill.points if r.point == "logits" and r.layer is None)
    failure = prefill.first_failure
    first = failure.where(dtype) if failure else (None if decode is None or decode.passed else
                                                  "decode step logits" + (" (NaN/Inf)" if decode.non_finite else ""))
    use = max(logits.budget_use, 0.0 if decode is None else decode.budget_use)
    return Attribution(family, logits.rel_l2, None if decode is None else decode.rel_l2, use, first)


def rerun(models: Models, backend: Backend, ids: torch.Tensor,
          steps: int) -> tuple[PrefillComparison, PointResult | None]:
    prefill = compare_prefill(models, backend, ids)
    if steps < 2:
        return prefill, None
    tokens, rows, recorder = generate_ours(models, backend, ids, steps)
    checked = check_decode(models, backend, ids, tokens, rows, recorder)
    return prefill, None if checked is None else checked[0]


def attribute(models: Models, backend: Backend, ids: torch.Tensor, steps: int,
              as_run: tuple[PrefillComparison, PointResult | None]) -> list[Attribution]:
    """The run as it was, then one rerun per family, nearest to passing (smallest budget use) first."""
    control = load_backend("torch", models.device)
    rows = [summary(family, *rerun(models, replaced(backend, control, family, models.weights.lm_head), ids, steps),
                    models.dtype) for family in families_used(models)]
    return [summary(NONE, *as_run, models.dtype)] + sorted(rows, key=lambda row: row.budget_use)
