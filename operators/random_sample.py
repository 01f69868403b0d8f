"""random_sample: temperature, top-k and top-p sampling from an explicit uniform value, judged exactly
(tie-aware) against the reference walk of the sorted distribution."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.argmax import SHOWN, vocabularies
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw
from reference.sampling import random_sample, sampling_distribution

CONTRACT = ("logits in f32/f16/bf16 [B, V]; random float32 [B] in [0, 1); out int64 [B]; "
            "temperature > 0, top_k >= 0 (0 keeps all), 0 < top_p <= 1")
FLOAT32_EPS = DType.F32.eps
# Uniform values that probe the ends of the walk (the first token, and the last kept one), in the last
# rows of a batch of at least EDGE_BATCH; every other row draws its own value over [0, 1).
EDGE_RANDOMS = (0.0, 0.9999)
EDGE_BATCH = 4
# Rows alternate, from a drawn start named in the case's note, between the regime's logits and the
# same logits times FLAT_SCALE (a power of two: still representable): over 1000+ tokens those are
# distributions with hundreds of plausible tokens, where top-k, top-p, the temperature's place and
# the precision of the running sum all move the chosen token.
ROW_KINDS = ("flat", "as drawn")
FLAT_SCALE = 1 / 16


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
                                   Regime.LARGE_SCORES), strat.seeds(),
                     strat.row_rotations(ROW_KINDS))


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    logits = case.inputs["logits"]
    drawn = draw(logits.shape, case.regime, logits.dtype, generator)
    drawn[..., 0] = torch.nan_to_num(drawn[..., 0], neginf=0.0)  # at least one finite logit per row
    kinds = strat.row_kinds(case.note, drawn.shape[0])
    if kinds is not None:  # a case written by hand keeps its logits as drawn
        drawn[torch.tensor([kind == "flat" for kind in kinds])] *= FLAT_SCALE
    random = torch.rand(logits.shape[0], generator=generator, dtype=torch.float64).to(torch.float32)
    if logits.shape[0] >= EDGE_BATCH:
        random[-len(EDGE_RANDOMS):] = torch.tensor(EDGE_RANDOMS)
    return {"logits": drawn, "random": random.double()}


def walk_positions(cumulative: torch.Tensor, before: torch.Tensor, tolerance: torch.Tensor, ends: torch.Tensor,
                   r: float) -> list[int]:
    """Sorted positions a walk may pick: position i for some prefix end e >= i in `ends` when its
    target r * cumulative[e] lies in [before[i] - tolerance[i], cumulative[i] + tolerance[i]).

    Ends can number the whole vocabulary (a tail below the tolerance), so the union is taken per
    position, not per end: targets grow with the end, so for each position the smallest target
    at or above its lower bound among the ends from it on decides."""
    targets = r * cumulative[ends]
    positions = torch.arange(cumulative.numel())
    first_end = torch.searchsorted(ends, positions)
    candidate = torch.maximum(first_end, torch.searchsorted(targets, before - tolerance))
    valid = candidate < ends.numel()
    hit = valid.clone()
    hit[valid] = targets[candidate[valid]] < (cumulative + tolerance)[valid]
    # An end whose own target no position holds stands for itself (a walk that runs off its prefix).
    empty = torch.searchsorted(cumulative + tolerance, targets, right=True) > ends
    return sorted(set(torch.nonzero(hit).flatten().tolist()) | set(ends[empty].tolist()))


def acceptable_tokens(logits: torch.Tensor, r: float, temperature: float, top_k: int, top_p: float) -> set[int]:
    """Every token a correct float32 walk may return for this row and uniform value.

    Float32 cumulative sums err by at most about (i + 32) ulps at sorted position i, so a walk may
    stop at any prefix end, and pick any position, within that distance of the float64 boundaries;
    tokens of equal probability may sort either way. Top-k keeps exactly k tokens, or (as
    transformers' TopKLogitsWarper does) also every token tied with the k-th: both are correct."""
    probs, ids, _ = sampling_distribution(logits, temperature, top_k, top_p, torch.float64)
    exactly_k = probs.numel() if top_k <= 0 else min(top_k, probs.numel())
    with_ties = int((probs >= probs[exactly_k - 1]).sum())  # equal logits give bit-equal probabilities
    accepted: set[int] = set()
    for kept in sorted({exactly_k, with_ties}):
        accepted |= walk_tokens(logits, probs, ids, kept, r, temperature, top_p)
    return accepted


def walk_tokens(logits: torch.Tensor, probs: torch.Tensor, ids: torch.Tensor, kept: int, r: float,
                temperature: float, top_p: float) -> set[int]:
    """The tokens acceptable for a walk over the first `kept` sorted probabilities."""
    cumulative = torch.cumsum(probs[:kept], dim=0)
    tolerance = 2 * (torch.arange(kept, dtype=torch.float64) + 32) * FLOAT32_EPS * cumulative[-1]
    before = torch.cat((cumulative.new_zeros(1), cumulative[:-1]))
    threshold = top_p * cumulative[-1]
    ends = torch.nonzero((cumulative >= threshold - tolerance) & (before < threshold + tolerance)).flatten()
    accepted = walk_positions(cumulative, before, tolerance, ends, r)
    chosen_probs = probs[accepted]
    scaled = logits.double() / temperature
    spread = (scaled.max() - scaled[ids[accepted]]).abs()
    tie_tolerance = chosen_probs * FLOAT32_EPS * (8 + 2 * spread)
    ties = within_any(probs[:kept], chosen_probs, tie_tolerance)
    return {int(ids[i]) for i in torch.nonzero(ties).flatten().tolist()} | {int(ids[i]) for i in accepted}


def within_any(descending: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Mask of the values (sorted descending) within radius of some centre: one range of the sorted
    values per centre, so memory stays linear when both number in the hundred thousands."""
    ascending = -descending
    start = torch.searchsorted(ascending, -centres - radii)
    stop = torch.searchsorted(ascending, -centres + radii, right=True)
    marks = torch.zeros(descending.numel() + 1, dtype=torch.int64)
    marks.index_add_(0, start, torch.ones_like(start))
    marks.index_add_(0, stop, -torch.ones_like(stop))
    return torch.cumsum(marks, dim=0)[:-1] > 0


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
        bad_values=(
            BadValue("random", "a random value of 1 (the range is [0, 1))",
                     lambda t, case: (last_element(t["random"]), 1.0)),
            BadValue("random", "a negative random value", lambda t, case: (first_element(t["random"]), -0.25)),
            BadValue("random", "a NaN random value", lambda t, case: (first_element(t["random"]), float("nan"))),
        ),
        lengths=lambda case: {"row": case.inputs["logits"].shape[-1]},
    )
