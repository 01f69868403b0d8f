"""moe_router: the Qwen3-MoE gate (linear, float32 softmax, top-k of 128, renormalise, cast)."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.argmax import SHOWN
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.moe_shapes import moe_shapes
from operators.core.spec import OperatorSpec
from operators.linear import CHAIN_WIDTH
from operators.core.values import draw
from reference.moe import router_weights_for
from reference.online import split_k_linear

CONTRACT = ("x, gate_weight and weights in one dtype (f32/f16/bf16); ids int64; x [T, H], gate_weight [E, H]; "
            "ids in descending order of probability")
FLOAT32_EPS = DType.F32.eps


def allows(d: Mapping[str, DType]) -> bool:
    return d["ids"] is DType.I64 and all(d[n] is d["x"] for n in ("gate_weight", "weights"))


def make_case(dtypes: Mapping[str, DType], tokens: int, experts: int, top_k: int, hidden: int,
              norm_topk_prob: bool = True, layouts: Mapping[str, Layout] | None = None,
              regime: Regime = Regime.NORMAL, seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    return Case(operator="moe_router",
                inputs={"x": tensor("x", (tokens, hidden)), "gate_weight": tensor("gate_weight", (experts, hidden))},
                outputs={"weights": tensor("weights", (tokens, top_k)), "ids": tensor("ids", (tokens, top_k))},
                attributes={"top_k": top_k, "norm_topk_prob": norm_topk_prob}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, tokens, shape, norm, layouts, regime, seed):
        note, experts, top_k, hidden, _ = shape
        return make_case(dtypes, tokens, experts, top_k, hidden, norm, dict(zip(("x", "gate_weight", "weights"), layouts)),
                         regime, seed, note)

    # Both Qwen3-MoE models renormalise (norm_topk_prob = true); the other setting is tested too.
    return st.builds(build, strat.dtype_combos(spec(), working), strat.token_counts(device), moe_shapes(device),
                     st.sampled_from((True, True, False)), strat.layout_sets(3),
                     strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x, gate = case.inputs["x"], case.inputs["gate_weight"]
    return {"x": draw(x.shape, case.regime, x.dtype, generator),
            "gate_weight": torch.randn(gate.shape, generator=generator, dtype=torch.float64) / math.sqrt(gate.shape[1])}


def may_vanish(logits: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Where a float32 softmax of the logits, each difference from the top moved by up to `shift` (the
    most that rounding two logits to the working dtype, half an ulp each, and their float32 accumulation
    can move it), may give 0: the lowest it can give is exp(d - shift) over a normaliser whose terms
    other than the top's 1 grow by exp(shift), and 0 is what float32 rounds that to."""
    differences = logits - logits.amax(-1, keepdim=True)
    normaliser = torch.exp(differences).sum(-1, keepdim=True)
    lowest = torch.exp(differences - shift[:, None]) / (1 + (normaliser - 1) * torch.exp(shift)[:, None])
    return lowest.to(torch.float32) == 0


def judge(decisions, inputs, attributes, dtype: DType) -> list[str]:
    """The chosen experts are a top-k set, tie-aware: experts whose logits differ by less than the
    rounding of a logit to the working dtype (plus float32 accumulation) may swap places, and so may
    experts whose float32 probabilities are equal (Qwen3 ranks the float32 softmax: logits 100 apart
    both give probability 0.0 there, and any float32 top-k may take either). A probability counts as 0
    where the float32 softmax of the rounded logits (Hugging Face's own) may give 0, tied with every
    other zero: about 104 below the top logit, where bf16 logits near 200 are a whole unit apart."""
    x, gate, ids = inputs["x"], inputs["gate_weight"], decisions["ids"]
    logits = x @ gate.T
    # A difference of two logits, each rounded to the working dtype (half an ulp) after float32 accumulation.
    shift = dtype.eps * logits.abs().amax(-1) + 8 * FLOAT32_EPS * (x.abs() @ gate.abs().T).amax(-1)
    tolerance = 2 * shift
    probabilities = torch.softmax(logits, dim=-1).to(torch.float32).masked_fill(may_vanish(logits, shift), 0.0)
    top_k, experts = ids.shape[1], gate.shape[0]
    wrong = []
    for token, chosen in enumerate(ids.tolist()):
        row, tol, probs = logits[token], tolerance[token].item(), probabilities[token]
        if any(not 0 <= e < experts for e in chosen) or len(set(chosen)) != top_k:
            wrong.append(f"token {token}: ids {chosen} are not {top_k} distinct experts in [0, {experts})")
            continue
        kth_index = torch.topk(row, top_k).indices[-1]
        kth, kth_prob = row[kth_index].item(), probs[kth_index]
        required = set(torch.nonzero((row > kth + tol) & (probs > kth_prob)).flatten().tolist())
        chosen_logits, chosen_probs = row[chosen], probs[chosen]
        if not required <= set(chosen) or bool(((chosen_logits < kth - tol) & (chosen_probs < kth_prob)).any()):
            expected = torch.topk(row, top_k).indices.tolist()
            wrong.append(f"token {token}: experts {chosen}, expected {expected} (ties within {tol:.2e} or of "
                         "equal float32 probability may swap)")
        elif bool(((chosen_logits[1:] > chosen_logits[:-1] + tol) & (chosen_probs[1:] > chosen_probs[:-1])).any()):
            wrong.append(f"token {token}: experts {chosen} are not in descending order of probability")
    return [f"output 'ids': {len(wrong)} of {len(ids)} tokens wrong: " + "; ".join(wrong[:SHOWN])] if wrong else []


def reference(inputs, attributes, upcast: torch.dtype, decisions=None) -> dict[str, torch.Tensor]:
    ids = decisions["ids"].to(inputs["x"].device)
    return {"weights": router_weights_for(inputs["x"], inputs["gate_weight"], ids, attributes["norm_topk_prob"], upcast)}


def chained(inputs, attributes, decisions) -> dict[str, torch.Tensor]:
    """The router with its logits from a float32 accumulation chain (linear's `float32_chain`): the
    weights of a top-k over 128 experts move by p(1 - p) times a logit's error, and at K = 2048 with
    outlier channels correct GEMMs differ ten-fold in that error (GPU cuBLAS 4e-7, CPU BLAS 5e-6 on
    one case), so Hugging Face's GEMM of the moment alone is no budget."""
    def project(x, gate_weight):
        return split_k_linear(x, gate_weight, None, CHAIN_WIDTH)
    return {"weights": router_weights_for(inputs["x"], inputs["gate_weight"], decisions["ids"].to(inputs["x"].device),
                                          attributes["norm_topk_prob"], torch.float32, project)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 3, 16, 4, 24, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="moe_router", summary="weights, ids = topk(softmax(x gate_weight^T)), renormalised",
        inputs=("x", "gate_weight"), outputs=("weights", "ids"), attributes=("top_k", "norm_topk_prob"),
        dtype_options={"x": FLOAT_DTYPES, "gate_weight": FLOAT_DTYPES, "weights": FLOAT_DTYPES,
                       "ids": (DType.I64, DType.I32)},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, decisions=("ids",), judge=judge, variants={"float32_chain": chained},
        lengths=lambda case: {"tokens": case.inputs["x"].shape[0]},
    )
