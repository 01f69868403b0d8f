"""swiglu: the Qwen3 MLP activation silu(gate) * up, including the fused gate_up layout."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.qwen3_configs import AWKWARD_SIZES, QWEN3_CONFIGS
from operators.core.spec import OperatorSpec
from operators.core.values import draw
from reference.swiglu import swiglu

CONTRACT = "gate, up and out in one dtype (f32/f16/bf16) and one shape"


def allows(d: Mapping[str, DType]) -> bool:
    return d["up"] is d["gate"] and d["out"] is d["gate"]


def make_case(dtypes: Mapping[str, DType], shape: tuple[int, ...], layouts: Mapping[str, Layout] | None = None,
              regime: Regime = Regime.NORMAL, seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    return Case(operator="swiglu", inputs={"gate": tensor("gate"), "up": tensor("up")},
                outputs={"out": tensor("out")}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    widths = sorted({c.intermediate for c in QWEN3_CONFIGS}) + list(AWKWARD_SIZES)
    # PADDED rows are the fused gate_up layout: gate and up are halves of one wider row.
    return st.builds(
        lambda dtypes, tokens, width, layouts, regime, seed: make_case(
            dtypes, (tokens, width), dict(zip(("gate", "up", "out"), layouts)), regime, seed),
        strat.dtype_combos(spec(), working), strat.token_counts(device), st.sampled_from(widths),
        strat.layout_sets(3),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS, Regime.NEAR_LIMIT),
        strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    gate = case.inputs["gate"]
    return {"gate": draw(gate.shape, case.regime, gate.dtype, generator),
            "up": draw(gate.shape, case.regime, gate.dtype, generator)}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": swiglu(inputs["gate"], inputs["up"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, (3, 17), note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="swiglu", summary="out = silu(gate) * up",
        inputs=("gate", "up"), outputs=("out",), attributes=(),
        dtype_options={"gate": FLOAT_DTYPES, "up": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case,
    )
