"""attention_prefill: causal grouped-query attention over one sequence (Qwen3 prefill)."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import attention_shapes as shapes
from operators.core import sensitivity
from operators.core import strategies as strat
from operators.core.budget import ATTENTION
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.spec import OperatorSpec
from operators.core.values import draw
from reference.online import chained_attention, flash_attention, scaled_in_float32_attention
from reference.attention import attention_prefill

CONTRACT = ("q, k, v and out in one dtype (f32/f16/bf16); q [T, Hq, D], k and v [T, Hkv, D] with "
            "Hq % Hkv == 0; scale = head_dim ** -0.5 for Qwen3; softmax in float32")
REGIMES = (Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS, Regime.LARGE_SCORES)


def allows(d: Mapping[str, DType]) -> bool:
    return all(d[name] is d["q"] for name in d)


def make_case(dtypes: Mapping[str, DType], tokens: int, heads: int, kv_heads: int, head_dim: int,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, count: int) -> TensorCase:
        return TensorCase((tokens, count, head_dim), dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    return Case(operator="attention_prefill",
                inputs={"q": tensor("q", heads), "k": tensor("k", kv_heads), "v": tensor("v", kv_heads)},
                outputs={"out": tensor("out", heads)}, attributes={"scale": head_dim ** -0.5},
                regime=regime, seed=seed, note=note or f"GQA {heads}/{kv_heads}")


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, tokens, gqa, head_dim, layouts, regime, seed):
        heads, kv_heads = shapes.scale_heads(*gqa, tokens * tokens * head_dim, device)
        while not shapes.fits(tokens, tokens, heads, head_dim, device):
            tokens = max(t for t in shapes.PREFILL_LENGTHS if t < tokens)
        return make_case(dtypes, tokens, heads, kv_heads, head_dim, dict(zip(("q", "k", "v", "out"), layouts)),
                         regime, seed, f"GQA {gqa[0]}/{gqa[1]} as {heads}/{kv_heads}")

    lengths = st.sampled_from(shapes.PREFILL_LENGTHS if device is Device.CPU else shapes.PREFILL_LENGTHS + (4096,))
    return st.builds(build, strat.dtype_combos(spec(), working), lengths, shapes.gqa_heads(), shapes.head_dims(),
                     strat.layout_sets(4), strat.regimes(*REGIMES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: draw(t.shape, case.regime if name == "q" else Regime.NORMAL, t.dtype, generator)
            for name, t in case.inputs.items()}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": attention_prefill(inputs["q"], inputs["k"], inputs["v"], attributes["scale"], upcast)}


def flash(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_prefill(inputs["q"], inputs["k"], inputs["v"], attributes["scale"], attend=flash_attention)}


def chained(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_prefill(inputs["q"], inputs["k"], inputs["v"], attributes["scale"], attend=chained_attention)}


def scaled_in_float32(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_prefill(inputs["q"], inputs["k"], inputs["v"], attributes["scale"],
                                     attend=scaled_in_float32_attention)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 5, 4, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="attention_prefill", summary="out = softmax(causal(q k^T * scale)) v, GQA",
        inputs=("q", "k", "v"), outputs=("out",), attributes=("scale",),
        dtype_options={"q": FLOAT_DTYPES, "k": FLOAT_DTYPES, "v": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=ATTENTION, variants={"flash": flash, "chained_scores": chained,
                                                                 "float32_scale": scaled_in_float32}, sensitivity=sensitivity.prefill,
        lengths=lambda case: {"keys": case.inputs["k"].shape[0]},
    )
