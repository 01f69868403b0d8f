"""rms_norm: the hidden-state norm and the per-head q/k norm of Qwen3 (same op, other shapes)."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.qwen3_configs import RMS_EPS
from operators.core.spec import OperatorSpec
from operators.core import strategies as strat
from operators.core.values import draw, norm_weight
from reference.online import sequential_rms_norm
from reference.rms_norm import rms_norm

CONTRACT = ("x in f32/f16/bf16; weight in x's dtype, or f32 with f16/bf16 x (mixed precision); "
            "out in x's dtype (Hugging Face would promote an f32 weight's product to f32: the "
            "kernel writes the activation dtype, the baseline is cast to it)")


def allows(d: Mapping[str, DType]) -> bool:
    return d["out"] is d["x"] and (d["weight"] is d["x"] or (d["weight"] is DType.F32 and d["x"] is not DType.F32))


def make_case(dtypes: Mapping[str, DType], shape: tuple[int, ...], eps: float = RMS_EPS,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL,
              seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}
    return Case(
        operator="rms_norm",
        inputs={"x": TensorCase(shape, dtypes["x"], layouts.get("x", Layout.CONTIGUOUS)),
                "weight": TensorCase((shape[-1],), dtypes["weight"])},
        outputs={"out": TensorCase(shape, dtypes["out"], layouts.get("out", Layout.CONTIGUOUS))},
        attributes={"eps": eps}, regime=regime, seed=seed, note=note,
    )


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    hidden_shape = st.tuples(strat.token_counts(device), strat.hidden_sizes())
    # q/k norm: [tokens, heads, head_dim], normalised over head_dim only.
    head_shape = st.tuples(strat.token_counts(device), st.sampled_from((1, 4, 8, 16, 40, 64)),
                           st.sampled_from((64, 128, 7)))
    return st.builds(
        lambda dtypes, shape, eps, layouts, regime, seed: make_case(
            dtypes, shape, eps, dict(zip(("x", "out"), layouts)), regime, seed,
            "per-head q/k norm" if len(shape) == 3 else "hidden norm"),
        strat.dtype_combos(spec(), working), st.one_of(hidden_shape, head_shape),
        st.sampled_from((RMS_EPS, 1e-5)), strat.layout_sets(2),
        strat.regimes(*strat.FINITE_REGIMES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = case.inputs["x"]
    return {"x": draw(x.shape, case.regime, x.dtype, generator),
            "weight": norm_weight(x.shape[-1], generator)}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": rms_norm(inputs["x"], inputs["weight"], attributes["eps"], upcast)}


def sequential(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": sequential_rms_norm(inputs["x"], inputs["weight"], attributes["eps"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, (3, 2, 33), note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="rms_norm", summary="out = (x * rsqrt(mean(x^2) + eps)).to(x.dtype) * weight",
        inputs=("x", "weight"), outputs=("out",), attributes=("eps",),
        dtype_options={"x": FLOAT_DTYPES, "weight": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, variants={"sequential_sum": sequential},
        lengths=lambda case: {"row": case.inputs["x"].shape[-1]},
    )
