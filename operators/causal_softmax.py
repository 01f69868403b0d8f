"""causal_softmax: softmax of attention scores [..., q_len, k_len] under the causal mask."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.softmax import REGIMES, allows, make_case, row_lengths, values
from operators.core.spec import OperatorSpec
from reference.online import online_causal_softmax
from reference.softmax import causal_mask, causal_softmax

CONTRACT = ("x and out in one dtype (f32/f16/bf16) and shape [..., q_len, k_len] with q_len <= k_len; "
            "query i sees keys j <= i + k_len - q_len; masked entries are 0")


def cases(device: Device, working: DType):
    def build(dtypes, heads, k_len, queries, layouts, regime, seed):
        q_len = max(1, min(queries, k_len))  # prefill (q_len == k_len) or decode chunks (q_len < k_len)
        return make_case("causal_softmax", dtypes, (heads, q_len, k_len), dict(zip(("x", "out"), layouts)),
                         regime, seed)

    return st.builds(build, strat.dtype_combos(spec(), working), st.sampled_from((1, 2, 5)),
                     row_lengths(device).filter(lambda n: n <= 1025), st.sampled_from((1, 3, 129, 1025)),
                     strat.layout_sets(2), strat.regimes(*REGIMES), strat.seeds())


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": causal_softmax(inputs["x"], upcast)}


def online(inputs, attributes) -> dict[str, torch.Tensor]:
    x = inputs["x"]
    return {"out": online_causal_softmax(x, causal_mask(x.shape[-2], x.shape[-1], x.device))}


def contract_case(dtypes: Mapping[str, DType]):
    return make_case("causal_softmax", dtypes, (2, 3, 5), note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="causal_softmax", summary="out = softmax(x masked causally) in float32, masked entries 0",
        inputs=("x",), outputs=("out",), attributes=(),
        dtype_options={"x": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, variants={"online": online},
        lengths=lambda case: {"row": case.inputs["x"].shape[-1]},
    )
