"""add_rms_norm: the residual add fused with the following RMSNorm; returns the normed value and the sum."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.qwen3_configs import RMS_EPS
from operators.core.spec import OperatorSpec
from operators.core.values import draw, norm_weight
from reference.add_rms_norm import add_rms_norm
from reference.online import sequential_rms_norm

CONTRACT = ("x, residual, sum and out in one dtype (f32/f16/bf16); weight in that dtype, or f32 "
            "with f16/bf16 activations")


def allows(d: Mapping[str, DType]) -> bool:
    same = d["residual"] is d["x"] and d["sum"] is d["x"] and d["out"] is d["x"]
    return same and (d["weight"] is d["x"] or (d["weight"] is DType.F32 and d["x"] is not DType.F32))


def make_case(dtypes: Mapping[str, DType], shape: tuple[int, ...], eps: float = RMS_EPS,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, size: tuple[int, ...] = shape) -> TensorCase:
        return TensorCase(size, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    return Case(
        operator="add_rms_norm",
        inputs={"x": tensor("x"), "residual": tensor("residual"), "weight": tensor("weight", (shape[-1],))},
        outputs={"out": tensor("out"), "sum": tensor("sum")},
        attributes={"eps": eps}, regime=regime, seed=seed, note=note,
    )


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    names = ("x", "residual", "out", "sum")
    return st.builds(
        lambda dtypes, tokens, hidden, eps, layouts, regime, seed: make_case(
            dtypes, (tokens, hidden), eps, dict(zip(names, layouts)), regime, seed),
        strat.dtype_combos(spec(), working), strat.token_counts(device), strat.hidden_sizes(),
        st.sampled_from((RMS_EPS, 1e-5)), strat.layout_sets(len(names)),
        strat.regimes(*strat.FINITE_REGIMES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = case.inputs["x"]
    return {"x": draw(x.shape, case.regime, x.dtype, generator),
            "residual": draw(x.shape, case.regime, x.dtype, generator),
            "weight": norm_weight(x.shape[-1], generator)}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    total, normed = add_rms_norm(inputs["x"], inputs["residual"], inputs["weight"], attributes["eps"], upcast)
    return {"out": normed, "sum": total}


def sequential(inputs, attributes) -> dict[str, torch.Tensor]:
    total = inputs["residual"] + inputs["x"]
    return {"out": sequential_rms_norm(total, inputs["weight"], attributes["eps"]), "sum": total}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, (3, 33), note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="add_rms_norm", summary="sum = x + residual; out = rms_norm(sum, weight, eps)",
        inputs=("x", "residual", "weight"), outputs=("out", "sum"), attributes=("eps",),
        dtype_options={"x": FLOAT_DTYPES, "residual": FLOAT_DTYPES, "weight": FLOAT_DTYPES,
                       "out": FLOAT_DTYPES, "sum": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, variants={"sequential_sum": sequential},
        lengths=lambda case: {"row": case.inputs["x"].shape[-1]},
    )
