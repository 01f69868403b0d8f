"""random_sample: temperature, top-k and top-p sampling from an explicit uniform value, judged exactly
(tie-aware) against the reference walk of the sorted distribution."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators import strategies as strat
from operators.argmax import SHOWN, vocabularies
from operators.case import Case, Layout, Regime, TensorCase
from operators.device import Device
from operators.dtypes import DType, FLOAT_DTYPES
from operators.spec import OperatorSpec
from operators.values import draw
from reference.sampling import random_sample, sampling_distribution

CONTRACT = ("logits in f32/f16/bf16 [B, V]; random float32 [B] in [0, 1); out int64 [B]; "
            "temperature > 0, top_k >= 0 (0 keeps all), 0 < top_p <= 1")
FLOAT32_EPS = DType.F32.eps
# Uniform values that probe the ends of the walk: the first token, and the last kept one.
EDGE_RANDOMS = (0.0, 0.9999)


def allows(d: Mapping[str, DType]) -> bool:
    return d["logits"].is_float and d["random"] is DType.F32 and d["out"] is DType.I64


def make_case(dtypes: Mapping[str, DType], batch: int, vocab: int, temperature: float = 1.0, top_k: int = 0,
              top_p: float = 1.0, layout: Layout = Layout.CONTIGUOUS, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    return Case(operator="random_sample",
                inputs={"logits": TensorCase((batch, vocab), dtypes["logits"], layout),
                        "random": TensorCase((batch,), dtypes["random"])},
                outputs={"out": TensorCase((batch,), dtypes["out"])},
                attributes={"temperature": temperature, "top_k": top_k, "top_p": top_p},
                regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    # Qwen3's recommended settings (0.6/20/0.95 thinking, 0.7/20/0.8 otherwise) and the extremes.
    return st.builds(make_case, strat.dtype_combos(spec(), working), st.sampled_from((1, 4, 16)), vocabularies(device),
                     st.sampled_from((0.6, 0.7, 1.0, 1.5)), st.sampled_from((0, 1, 20, 50)),
                     st.sampled_from((0.8, 0.95, 1.0, 0.3)), strat.layouts(),
                     strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.CONSTANT_ROWS, Regime.MASKED,
                                   Regime.LARGE_SCORES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    logits = case.inputs["logits"]
    drawn = draw(logits.shape, case.regime, logits.dtype, generator)
    drawn[..., 0] = torch.nan_to_num(drawn[..., 0], neginf=0.0)  # at least one finite logit per row
    random = torch.rand(logits.shape[0], generator=generator, dtype=torch.float64).to(torch.float32)
    random[: len(EDGE_RANDOMS)] = torch.tensor(EDGE_RANDOMS[: logits.shape[0]])
    return {"logits": drawn, "random": random.double()}


def acceptable_tokens(logits: torch.Tensor, r: float, temperature: float, top_k: int, top_p: float) -> set[int]:
    """Every token a correct float32 walk may return for this row and uniform value.

    Float32 cumulative sums err by at most about (i + 32) ulps at sorted position i, so a walk may
    stop at any prefix end, and pick any position, within that distance of the float64 boundaries;
    tokens of equal probability may sort either way."""
    probs, ids, _ = sampling_distribution(logits, temperature, top_k, top_p, torch.float64)
    kept = probs.numel() if top_k <= 0 else min(top_k, probs.numel())
    cumulative = torch.cumsum(probs[:kept], dim=0)
    tolerance = 2 * (torch.arange(kept, dtype=torch.float64) + 32) * FLOAT32_EPS * cumulative[-1]
    before = torch.cat((cumulative.new_zeros(1), cumulative[:-1]))
    threshold = top_p * cumulative[-1]
    ends = torch.nonzero((cumulative >= threshold - tolerance) & (before < threshold + tolerance)).flatten()
    accepted: set[int] = set()
    for end in ends.tolist():
        target = r * cumulative[end]
        hit = (cumulative[: end + 1] > target - tolerance[: end + 1]) & (before[: end + 1] <= target + tolerance[: end + 1])
        positions = torch.nonzero(hit).flatten()
        accepted.update(positions.tolist() or [end])
    chosen_probs = probs[sorted(accepted)]
    scaled = logits.double() / temperature
    spread = (scaled.max() - scaled[ids[sorted(accepted)]]).abs()
    tie_tolerance = chosen_probs * FLOAT32_EPS * (8 + 2 * spread)
    ties = ((probs[:kept, None] - chosen_probs[None, :]).abs() <= tie_tolerance[None, :]).any(dim=1)
    return {int(ids[i]) for i in torch.nonzero(ties).flatten().tolist()} | {int(ids[i]) for i in accepted}


def judge(decisions, inputs, attributes, dtype: DType) -> list[str]:
    logits, randoms, chosen = inputs["logits"], inputs["random"], decisions["out"]
    wrong = []
    for row, (values, r, token) in enumerate(zip(logits, randoms.tolist(), chosen.tolist())):
        accepted = acceptable_tokens(values, r, attributes["temperature"], attributes["top_k"], attributes["top_p"])
        if token not in accepted:
            wrong.append(f"row {row} (random {r:.6f}): token {token}; the walk allows {sorted(accepted)[:5]}")
    return [f"output 'out': {len(wrong)} of {len(chosen)} rows wrong: " + "; ".join(wrong[:SHOWN])] if wrong else []


def reference(inputs, attributes, upcast: torch.dtype, decisions=None) -> dict[str, torch.Tensor]:
    return {"out": random_sample(inputs["logits"], inputs["random"], attributes["temperature"], attributes["top_k"],
                                 attributes["top_p"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 2, 9, 0.7, 3, 0.9, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="random_sample", summary="out[b] = the walk of softmax(logits[b] / T) under top-k, top-p at random[b]",
        inputs=("logits", "random"), outputs=("out",), attributes=("temperature", "top_k", "top_p"),
        dtype_options={"logits": FLOAT_DTYPES, "random": (DType.F32, DType.F16), "out": (DType.I64, DType.I32)},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, decisions=("out",), judge=judge,
    )
