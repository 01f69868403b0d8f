"""linear: y = x W^T (+ b), in the shapes of every Qwen3 projection."""

from __future__ import annotations

import math
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
from reference.linear import linear
from reference.online import split_k_linear

CONTRACT = ("x, weight, bias and out in one dtype (f32/f16/bf16): an f32 weight with f16/bf16 "
            "activations (the float-vs-Half mismatch) is rejected, not silently promoted")

# Multiply-accumulates (and weight elements) per CPU case: keeps the CPU set fast and still holds
# the Qwen3-0.6B projections; the GPU set runs every shape.
CPU_MAC_LIMIT = 4e6
# Largest input magnitude in the NEAR_LIMIT regime: float16 outputs stay below its 65504 maximum.
NEAR_LIMIT = {DType.F16: 4.0e3, DType.BF16: 1.0e17, DType.F32: 1.0e17}


def allows(d: Mapping[str, DType]) -> bool:
    return all(d[name] is d["x"] for name in d)


def make_case(dtypes: Mapping[str, DType], tokens: int, in_features: int, out_features: int, bias: bool,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    inputs = {"x": tensor("x", (tokens, in_features)), "weight": tensor("weight", (out_features, in_features))}
    if bias:
        inputs["bias"] = tensor("bias", (out_features,))
    return Case(operator="linear", inputs=inputs, outputs={"out": tensor("out", (tokens, out_features))},
                regime=regime, seed=seed, note=note)


def projection_shapes(device: Device) -> list[tuple[int, int, str]]:
    shapes = {(k, n, f"{c.name} {name}") for c in QWEN3_CONFIGS for name, (k, n) in c.projections.items()}
    shapes |= {(k, n, "awkward") for k in AWKWARD_SIZES for n in (1, 3, 65, 129)}
    if device is Device.CPU:
        shapes = {s for s in shapes if s[0] * s[1] <= CPU_MAC_LIMIT}
    return sorted(shapes)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, shape, tokens, bias, layouts, regime, seed):
        k, n, note = shape
        if device is Device.CPU:
            tokens = max(1, min(tokens, int(CPU_MAC_LIMIT // (k * n))))
        return make_case(dtypes, tokens, k, n, bias, dict(zip(("x", "weight", "bias", "out"), layouts)),
                         regime, seed, note)

    return st.builds(
        build, strat.dtype_combos(spec(), working), st.sampled_from(projection_shapes(device)),
        strat.token_counts(device), st.sampled_from((False, False, False, True)),  # Qwen3 has no bias; other models do
        strat.layout_sets(4),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS, Regime.NEAR_LIMIT,
                      Regime.CONSTANT_ROWS),
        strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x, weight = case.inputs["x"], case.inputs["weight"]
    result = {
        "x": draw(x.shape, case.regime, x.dtype, generator, NEAR_LIMIT[x.dtype]),
        # Trained projections are ~N(0, 0.02); scaling by 1/sqrt(in_features) keeps outputs near |x|.
        "weight": torch.randn(weight.shape, generator=generator, dtype=torch.float64) / math.sqrt(weight.shape[1]),
    }
    if "bias" in case.inputs:
        result["bias"] = torch.randn(case.inputs["bias"].shape, generator=generator, dtype=torch.float64)
    return result


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": linear(inputs["x"], inputs["weight"], inputs.get("bias"))}


# Products added one at a time to one float32 accumulator per output, in input-feature order: the
# textbook GEMM, and what each thread of a tiled GPU GEMM without split-K does (Inductor's Triton
# mm). Its rounding chain is the longest a correct float32 linear has; on an H200 at K = 17408
# (outlier channels) Inductor erred 2.6x cuBLAS, more than chunks of 8 cover.
CHAIN_WIDTH = 1


def chained(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": split_k_linear(inputs["x"], inputs["weight"], inputs.get("bias"), CHAIN_WIDTH)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 3, 17, 5, bias=True, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="linear", summary="out = x @ weight.T (+ bias)",
        inputs=("x", "weight", "bias"), outputs=("out",), attributes=(),
        dtype_options={"x": FLOAT_DTYPES, "weight": FLOAT_DTYPES, "bias": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, optional_inputs=("bias",), variants={"float32_chain": chained},
        lengths=lambda case: {"reduction": case.inputs["x"].shape[-1]},
    )
