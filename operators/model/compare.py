"""Ours (working dtype) vs transformers (float64) at every named point, judged by the error budget against
transformers in the working dtype; the first (layer, point) over budget in forward order is the finding."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch

from operators.core.budget import Budget
from operators.core.dtypes import DType
from operators.core.metrics import budget_checks, error_metrics

POINT_ORDER = ("embedding", "input_norm", "q_proj", "k_proj", "v_proj", "q_norm", "k_norm", "rope_q", "rope_k",
               "attention", "o_proj", "attention_residual", "post_norm", "routing", "moe_router", "mlp", "moe",
               "output", "final_norm", "logits")

# The model-level budget is the operator-level one (VERDICT.md), for the same reason at every point: the
# runner and transformers round the same activations to the working dtype after each operator, so both
# errors are sums of as many roundings of the same size carried forward by the same Jacobians. Small errors
# propagate linearly, so if each of our operators stays within twice its same-dtype error, their carried sum
# stays within twice the baseline's sum. The floor is one ulp of the working dtype at the point's scale plus
# four float32 ulps: transformers' float64 model still normalises, rotates and takes softmaxes in float32, so
# in f32 runs the baseline error of a norm output can be exactly 0. Measured (not tuned: k and the floor are
# the operator-level ones): native and torch control on the synthetic tiny and tiny-moe models, f32/f16/bf16,
# 6 weight seeds, prompts of 1, 2, 5 and 40 tokens use at most 0.76 of the budget at any point; Qwen3-0.6B
# widths (3 layers, bf16) at most 0.51. A wrong kernel (skipped q/k norm, rope theta 1e4, a GQA head mix-up)
# is off by 10-100% at its own point: 40-60 times its budget in bf16.
MODEL_BUDGET = Budget(k=2.0, floor_ulps=1.0, f32_ulps=4.0, justification=(
    "model level: twice the error of transformers in the working dtype against transformers in float64 on the "
    "same rounded weights, plus one ulp of the working dtype and four float32 ulps at the point's scale; small "
    "errors propagate linearly through the same network, so a per-operator factor of 2 bounds the carried sum"))

Points = Mapping[tuple[int | None, str], torch.Tensor]


@dataclass(frozen=True)
class PointResult:
    layer: int | None
    point: str
    passed: bool
    cosine: float | None = None
    rel_l2: float | None = None
    max_abs: float | None = None
    baseline_rel_l2: float | None = None
    baseline_max_abs: float | None = None
    error_ratio: float | None = None  # max over measures of e(ours, ref) / e(base, ref)
    budget_use: float = 0.0  # max over measures of e(ours, ref) / limit: above 1 fails
    reasons: tuple[str, ...] = ()
    non_finite: bool = False  # failed because ours (or the reference) holds NaN or Inf: nothing measured

    def where(self, dtype: DType) -> str:
        layer = "model" if self.layer is None else f"layer {self.layer}"
        return f"{layer}, after {self.point}, in {dtype.short}" + (" (NaN/Inf)" if self.non_finite else "")

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {"reasons": list(self.reasons)}


def budget_use(value: float, limit: float) -> float:
    return value / limit if limit > 0 else (0.0 if value <= 0 else float("inf"))


def forward_key(key: tuple[int | None, str]) -> tuple[int, int]:
    layer, point = key
    rank = -1 if point == "embedding" else (1 << 30 if layer is None else layer)
    return rank, POINT_ORDER.index(point)


def compare_point(key, ours: torch.Tensor, base: torch.Tensor, ref: torch.Tensor, dtype: DType,
                  budget: Budget = MODEL_BUDGET, slack: Mapping[str, float] | None = None) -> PointResult:
    """The budget verdict of one point; `slack` adds to the limit of a measure ("max_abs", "rel_l2")."""
    layer, point = key
    if ours.shape != ref.shape:
        return PointResult(layer, point, False, reasons=(f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}",))
    ours_finite, ref_finite = torch.isfinite(ours.double().cpu()), torch.isfinite(ref.double().cpu())
    if not (ours_finite.all() and ref_finite.all()):
        # A Qwen3 forward never makes NaN or Inf: a non-finite activation fails the point even where
        # the reference has it too (a checkpoint with NaN weights makes a NaN model, never a PASS).
        count, theirs = int((~ours_finite).sum()), int((~ref_finite).sum())
        return PointResult(layer, point, False, budget_use=float("inf"), non_finite=True,
                           reasons=(f"{count} of {ours.numel()} elements non-finite in ours, {theirs} in the float64 "
                                    "reference (a Qwen3 forward has none: the checkpoint or a kernel makes them)",))
    mine, theirs = error_metrics(ours, ref, dtype), error_metrics(base, ref, dtype)
    checks = [replace(c, limit=c.limit + (slack or {}).get(c.measure, 0.0))
              for c in budget_checks(mine, theirs, budget, dtype)]
    ratios = [c.ratio for c in checks if c.ratio is not None]
    return PointResult(layer, point, all(c.passed for c in checks), mine.cosine, mine.rel_l2, mine.max_abs,
                       theirs.rel_l2, theirs.max_abs, max(ratios, default=None),
                       max(budget_use(c.value, c.limit) for c in checks),
                       tuple(c.describe() for c in checks if not c.passed))


def judge_routing(layer: int, ours_ids: torch.Tensor, ref_logits: torch.Tensor, base_logits: torch.Tensor,
                  dtype: DType, budget: Budget = MODEL_BUDGET) -> PointResult:
    """Our experts against the float64 router's own top-k, tie-aware: choosing b over a is legitimate when
    ref_logit[a] - ref_logit[b] is within what the same-dtype router's logit error can swap (both logits
    moving, 2 * k * max|base - ref|, plus the floor); anything wider is a wrong decision."""
    ref_logits, base_logits = ref_logits.double().cpu(), base_logits.double().cpu()
    slack = 2 * budget.k * (base_logits - ref_logits).abs().max().item()
    limit = slack + budget.max_abs_floor(dtype, ref_logits.abs().max().item())
    ref_ids = torch.topk(ref_logits, ours_ids.shape[1], dim=-1).indices
    differ, worst = 0, 0.0
    for token, (mine, theirs) in enumerate(zip(ours_ids.cpu().tolist(), ref_ids.tolist())):
        dropped, added = set(theirs) - set(mine), set(mine) - set(theirs)
        if dropped:
            differ += 1
            row = ref_logits[token]
            worst = max(worst, max(row[a].item() for a in dropped) - min(row[b].item() for b in added))
    passed = worst <= limit
    reason = (f"{differ} of {ours_ids.shape[0]} tokens choose other experts than the float64 router; widest logit "
              f"margin crossed {worst:.3e}, near-tie limit {limit:.3e}")
    return PointResult(layer, "routing", passed, budget_use=budget_use(worst, limit),
                       reasons=() if passed else (reason,))


def dense_routing(points: Points, layer: int, experts: int) -> torch.Tensor:
    """A layer's router weights as a dense [T, E] table (0 for experts not chosen), whatever their order."""
    weights, ids = points[(layer, "moe_weights")], points[(layer, "moe_ids")]
    dense = torch.zeros((weights.shape[0], experts), dtype=weights.dtype, device=weights.device)
    return dense.scatter(1, ids.long(), weights)


def router_slack(logits: torch.Tensor, weights: torch.Tensor, dtype: DType) -> dict[str, float]:
    """Router weights are a softmax of logits that transformers rounds to the working dtype and a correct
    kernel may keep in float32: each logit may differ by half an ulp of the dtype at max|logit|, and a
    softmax row moves by at most half the largest logit change (sum_j |dp_i/dl_j| = 2 p_i (1 - p_i) <= 1/2),
    the top-k renormalisation likewise. So each weight may move by eps * max|logit| / 4: a term of the
    max-abs limit, and of the relative-L2 limit over the chosen weights. One token routes on a single logit
    difference, so without it the factor-of-2 rule compares two single roundings and misfires."""
    shift = dtype.eps * logits.double().abs().max().item() / 4
    chosen, norm = weights.ne(0).sum().item(), weights.double().norm().item()
    return {"max_abs": shift, "rel_l2": shift * chosen ** 0.5 / norm if norm > 0 else 0.0}


def compare_points(ours: Points, base: Points, ref: Points, dtype: DType,
                   budget: Budget = MODEL_BUDGET) -> list[PointResult]:
    """Every point the reference holds, in forward order; a MoE layer's expert choices are judged
    ("routing"), then its router weights as a dense table ("moe_router") on those choices."""
    keys = {k for k in ref if k[1] in POINT_ORDER} | {(k[0], "moe_router") for k in ref if k[1] == "moe_ids"}
    results = []
    for key in sorted(keys, key=forward_key):
        layer, point = key
        if point == "moe_router":
            if (layer, "moe_ids") not in ours:
                results.append(PointResult(layer, point, False, reasons=("our runner did not route this layer",)))
                continue
            logits = ref[(layer, "router_logits")]
            results.append(judge_routing(layer, ours[(layer, "moe_ids")], logits, base[(layer, "router_logits")],
                                         dtype, budget))
            mine, theirs, reference = (dense_routing(p, layer, logits.shape[-1]) for p in (ours, base, ref))
            results.append(compare_point(key, mine, theirs, reference, dtype, budget,
                                         router_slack(logits, reference, dtype)))
        elif key not in ours:
            results.append(PointResult(layer, point, False, reasons=("our runner did not produce this point",)))
        else:
            results.append(compare_point(key, ours[key], base[key], ref[key], dtype, budget))
    return results


def first_failure(results: list[PointResult]) -> PointResult | None:
    return next((r for r in results if not r.passed), None)
