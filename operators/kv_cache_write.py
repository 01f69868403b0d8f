"""kv_cache_write: scatter new keys and values into a contiguous cache at given positions."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import attention_shapes as shapes
from operators.core import strategies as strat
from operators.core.budget import EXACT
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw
from reference.kv_cache import kv_cache_write

CONTRACT = ("k, v, k_cache and v_cache in one dtype (f32/f16/bf16); positions int32/int64 [B, S], "
            "distinct within a request, in [0, L); only the addressed slots are written")


def allows(d: Mapping[str, DType]) -> bool:
    return d["positions"] in INDEX_DTYPES and all(d[n] is d["k"] for n in d if n != "positions")


def make_case(dtypes: Mapping[str, DType], batch: int, new_tokens: int, length: int, kv_heads: int, head_dim: int,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    new, cache = (batch, new_tokens, kv_heads, head_dim), (batch, length, kv_heads, head_dim)
    return Case(operator="kv_cache_write",
                inputs={"k": tensor("k", new), "v": tensor("v", new), "positions": tensor("positions", (batch, new_tokens))},
                outputs={"k_cache": tensor("k_cache", cache), "v_cache": tensor("v_cache", cache)},
                attributes={"cache_length": length}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda dtypes, batch, new_tokens, length, kv_heads, head_dim, layouts, regime, seed: make_case(
            dtypes, batch, min(new_tokens, length), length, kv_heads, head_dim,
            dict(zip(("k", "v", "k_cache", "v_cache"), layouts)), regime, seed),
        strat.dtype_combos(spec(), working), shapes.batch_sizes(device), st.sampled_from((1, 3, 17)),
        shapes.cache_lengths(device), st.sampled_from((1, 4, 8)), shapes.head_dims(),
        strat.layout_sets(4),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.NEAR_LIMIT), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    k, length = case.inputs["k"], case.outputs["k_cache"].shape[1]
    positions = torch.stack([torch.randperm(length, generator=generator)[: k.shape[1]] for _ in range(k.shape[0])])
    return {"k": draw(k.shape, case.regime, k.dtype, generator), "v": draw(k.shape, case.regime, k.dtype, generator),
            "positions": positions}


def written(case: Case, inputs) -> dict[str, torch.Tensor]:
    shape = case.outputs["k_cache"].shape
    mask = torch.zeros(shape[:2], dtype=torch.bool)
    mask[torch.arange(shape[0])[:, None], inputs["positions"].long()] = True
    full = mask[..., None, None].expand(shape).clone()
    return {"k_cache": full, "v_cache": full}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    k = inputs["k"]
    batch, _, heads, dim = k.shape
    empty = torch.zeros(batch, attributes["cache_length"], heads, dim, dtype=k.dtype, device=k.device)
    return {"k_cache": kv_cache_write(empty, k, inputs["positions"]),
            "v_cache": kv_cache_write(empty, inputs["v"], inputs["positions"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 2, 2, 5, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="kv_cache_write", summary="k_cache[b, positions[b, s]] = k[b, s]; v likewise",
        inputs=("k", "v", "positions"), outputs=("k_cache", "v_cache"), attributes=(),
        dtype_options={"k": FLOAT_DTYPES, "v": FLOAT_DTYPES, "positions": (*INDEX_DTYPES, DType.F32),
                       "k_cache": FLOAT_DTYPES, "v_cache": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=EXACT, written=written,
        bad_values=(
            BadValue("positions", "a position past the cache",
                     lambda t, case: (last_element(t["positions"]), case.outputs["k_cache"].shape[1])),
            BadValue("positions", "a negative position", lambda t, case: (first_element(t["positions"]), -1)),
            BadValue("positions", "a position written twice in one request",
                     lambda t, case: ((0, 1), t["positions"][0, 0].item())),
        ),
    )
