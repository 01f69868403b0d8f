"""softmax: the float32-accumulated softmax over the last dim that Qwen3 attention applies."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.spec import OperatorSpec
from operators.core.values import draw
from reference.online import online_softmax
from reference.softmax import softmax

CONTRACT = "x and out in one dtype (f32/f16/bf16) and shape; computed in float32"
REGIMES = (Regime.NORMAL, Regime.HEAVY_TAILED, Regime.NEAR_LIMIT, Regime.CONSTANT_ROWS, Regime.MASKED,
           Regime.LARGE_SCORES)


def allows(d: Mapping[str, DType]) -> bool:
    return d["out"] is d["x"]


def make_case(operator: str, dtypes: Mapping[str, DType], shape: tuple[int, ...],
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}
    return Case(operator=operator,
                inputs={"x": TensorCase(shape, dtypes["x"], layouts.get("x", Layout.CONTIGUOUS))},
                outputs={"out": TensorCase(shape, dtypes["out"], layouts.get("out", Layout.CONTIGUOUS))},
                regime=regime, seed=seed, note=note)


def row_lengths(device: Device) -> st.SearchStrategy[int]:
    """Attention rows (block boundaries 127/128/129, 1024/1025) and, on the GPU, the vocabulary."""
    lengths = (1, 2, 7, 127, 128, 129, 1024, 1025, 4099)
    return st.sampled_from(lengths if device is Device.CPU else lengths + (32768, 151936))


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda dtypes, rows, cols, layouts, regime, seed: make_case(
            "softmax", dtypes, (rows, cols), dict(zip(("x", "out"), layouts)), regime, seed),
        strat.dtype_combos(spec(), working), st.sampled_from((1, 3, 8, 33)), row_lengths(device),
        strat.layout_sets(2), strat.regimes(*REGIMES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = case.inputs["x"]
    return {"x": draw(x.shape, case.regime, x.dtype, generator)}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": softmax(inputs["x"], upcast)}


def online(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": online_softmax(inputs["x"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case("softmax", dtypes, (3, 17), note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="softmax", summary="out = softmax(x, dim=-1) in float32, cast to x's dtype",
        inputs=("x",), outputs=("out",), attributes=(),
        dtype_options={"x": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, variants={"online": online},
        lengths=lambda case: {"row": case.inputs["x"].shape[-1]},
    )
