"""moe_experts: the Qwen3-MoE experts, a SwiGLU MLP per chosen expert, weighted and summed."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.moe_shapes import moe_shapes
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw, norm_weight
from reference.moe import moe_experts

CONTRACT = ("x, weights, gate_up, down and out in one dtype (f32/f16/bf16); ids int32/int64 in [0, E); "
            "gate_up [E, 2I, H] (gate rows first), down [E, H, I], as transformers stores them")


def allows(d: Mapping[str, DType]) -> bool:
    return d["ids"] in INDEX_DTYPES and all(d[n] is d["x"] for n in d if n != "ids")


def make_case(dtypes: Mapping[str, DType], tokens: int, experts: int, top_k: int, hidden: int, width: int,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    return Case(operator="moe_experts",
                inputs={"x": tensor("x", (tokens, hidden)), "weights": tensor("weights", (tokens, top_k)),
                        "ids": tensor("ids", (tokens, top_k)), "gate_up": tensor("gate_up", (experts, 2 * width, hidden)),
                        "down": tensor("down", (experts, hidden, width))},
                outputs={"out": tensor("out", (tokens, hidden))}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, tokens, shape, layouts, regime, seed):
        note, experts, top_k, hidden, width = shape
        return make_case(dtypes, tokens, experts, top_k, hidden, width,
                         dict(zip(("x", "gate_up", "down", "out"), layouts)), regime, seed, note)

    return st.builds(build, strat.dtype_combos(spec(), working), strat.token_counts(device), moe_shapes(device),
                     strat.layout_sets(4),
                     strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x, ids, gate_up, down = (case.inputs[n] for n in ("x", "ids", "gate_up", "down"))
    experts, top_k = gate_up.shape[0], ids.shape[1]
    chosen = torch.stack([torch.randperm(experts, generator=generator)[:top_k] for _ in range(ids.shape[0])])
    weights = torch.softmax(torch.randn(ids.shape, generator=generator, dtype=torch.float64), dim=-1)
    # The experts' input is always the post-attention RMSNorm's output: rows of unit RMS times the
    # norm weight. Unnormalised heavy tails at hidden 4096 overflow float16 inside every expert
    # (Hugging Face's own float16 forward returns inf there), which says nothing about a kernel.
    raw = draw(x.shape, case.regime, x.dtype, generator)
    rms = raw.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-30)
    normed = raw / rms * norm_weight(x.shape[-1], generator)
    return {"x": normed, "weights": weights, "ids": chosen,
            "gate_up": torch.randn(gate_up.shape, generator=generator, dtype=torch.float64) / math.sqrt(gate_up.shape[2]),
            "down": torch.randn(down.shape, generator=generator, dtype=torch.float64) / math.sqrt(down.shape[2])}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": moe_experts(inputs["x"], inputs["weights"], inputs["ids"], inputs["gate_up"], inputs["down"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 3, 4, 2, 8, 6, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="moe_experts", summary="out[t] = sum_j weights[t, j] * down[e] @ swiglu(gate_up[e] @ x[t]), e = ids[t, j]",
        inputs=("x", "weights", "ids", "gate_up", "down"), outputs=("out",), attributes=(),
        dtype_options={"x": FLOAT_DTYPES, "weights": FLOAT_DTYPES, "ids": (*INDEX_DTYPES, DType.F32),
                       "gate_up": FLOAT_DTYPES, "down": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, upcast_by_reference=("gate_up", "down"),
        bad_values=(
            BadValue("ids", "an expert id equal to the number of experts",
                     lambda t, case: (last_element(t["ids"]), t["gate_up"].shape[0])),
            BadValue("ids", "a negative expert id", lambda t, case: (first_element(t["ids"]), -1)),
        ),
        lengths=lambda case: {"tokens": case.inputs["x"].shape[0]},
    )
