"""rope: rotary position embedding of q or k at arbitrary positions, NeoX (Qwen3) and GPT-J layouts."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core import sensitivity
from operators.core.budget import ROPE
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.qwen3_configs import ROPE_THETA
from operators.core.spec import OperatorSpec
from operators.core.values import draw
from reference.rope import GPTJ, NEOX, rope

CONTRACT = ("x and out in one dtype (f32/f16/bf16), x of shape [tokens, heads, head_dim] with an even "
            "head_dim; positions int32/int64 of shape [tokens]; layout 'neox' (Qwen3) or 'gptj'")


def allows(d: Mapping[str, DType]) -> bool:
    return d["positions"] in INDEX_DTYPES and d["out"] is d["x"]


def make_case(dtypes: Mapping[str, DType], tokens: int, heads: int, head_dim: int, theta: float = ROPE_THETA,
              layout: str = NEOX, max_position: int = 4096, layouts: Mapping[str, Layout] | None = None,
              regime: Regime = Regime.NORMAL, seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}
    shape = (tokens, heads, head_dim)
    return Case(
        operator="rope",
        inputs={"x": TensorCase(shape, dtypes["x"], layouts.get("x", Layout.CONTIGUOUS)),
                "positions": TensorCase((tokens,), dtypes["positions"])},
        outputs={"out": TensorCase(shape, dtypes["out"], layouts.get("out", Layout.CONTIGUOUS))},
        attributes={"theta": theta, "layout": layout, "max_position": max_position},
        regime=regime, seed=seed, note=note,
    )


POSITION_LIMITS = (1, 17, 4096, 32768, 131072)  # the 32K native context and the 128K extended one
MAX_POSITION = max(POSITION_LIMITS)  # every drawn position is below it (a backend's setup hears it)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda dtypes, tokens, heads, head_dim, theta, layout, max_position, layouts, regime, seed: make_case(
            dtypes, tokens, heads, head_dim, theta, layout, max_position, dict(zip(("x", "out"), layouts)),
            regime, seed),
        strat.dtype_combos(spec(), working), strat.token_counts(device), st.sampled_from((1, 4, 8, 16, 64)),
        # 128 and 64 are Qwen3's; 2 and 34 are even but not multiples of a vector width.
        st.sampled_from((128, 64, 2, 34)), st.sampled_from((ROPE_THETA, 1e4)), st.sampled_from((NEOX, GPTJ)),
        st.sampled_from(POSITION_LIMITS), strat.layout_sets(2),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS, Regime.NEAR_LIMIT),
        strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = case.inputs["x"]
    # Unsorted, repeated positions: a kernel must not assume arange(tokens).
    positions = torch.randint(0, case.attributes["max_position"], (x.shape[0],), generator=generator)
    return {"x": draw(x.shape, case.regime, x.dtype, generator), "positions": positions}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": rope(inputs["x"], inputs["positions"], attributes["theta"], attributes["layout"], upcast)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 3, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="rope", summary="out = x * cos(pos * inv_freq) + rotate(x) * sin(pos * inv_freq)",
        inputs=("x", "positions"), outputs=("out",), attributes=("theta", "layout"),
        dtype_options={"x": FLOAT_DTYPES, "positions": (*INDEX_DTYPES, DType.F32), "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=ROPE, sensitivity=sensitivity.rope,
    )
