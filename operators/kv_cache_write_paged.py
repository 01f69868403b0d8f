"""kv_cache_write_paged: scatter new keys and values into a paged cache at flat slots."""

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
from reference.kv_cache import kv_cache_write_paged

CONTRACT = ("k, v, k_cache and v_cache in one dtype (f32/f16/bf16); slots int32/int64 [N], distinct, "
            "slot = block * block_size + offset; only the addressed slots are written")


def allows(d: Mapping[str, DType]) -> bool:
    return d["slots"] in INDEX_DTYPES and all(d[n] is d["k"] for n in d if n != "slots")


def make_case(dtypes: Mapping[str, DType], tokens: int, blocks: int, block_size: int, kv_heads: int, head_dim: int,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    new, cache = (tokens, kv_heads, head_dim), (blocks, block_size, kv_heads, head_dim)
    return Case(operator="kv_cache_write_paged",
                inputs={"k": tensor("k", new), "v": tensor("v", new), "slots": tensor("slots", (tokens,))},
                outputs={"k_cache": tensor("k_cache", cache), "v_cache": tensor("v_cache", cache)},
                attributes={"blocks": blocks, "block_size": block_size}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda dtypes, tokens, blocks, block_size, kv_heads, head_dim, layouts, regime, seed: make_case(
            dtypes, min(tokens, blocks * block_size), blocks, block_size, kv_heads, head_dim,
            dict(zip(("k", "v", "k_cache", "v_cache"), layouts)), regime, seed, f"block size {block_size}"),
        strat.dtype_combos(spec(), working), st.sampled_from((1, 5, 33, 129)), st.sampled_from((1, 3, 9)),
        st.sampled_from((16, 32)), st.sampled_from((1, 4, 8)), shapes.head_dims(),
        strat.layout_sets(4),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.NEAR_LIMIT), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    k, cache = case.inputs["k"], case.outputs["k_cache"]
    slots = torch.randperm(cache.shape[0] * cache.shape[1], generator=generator)[: k.shape[0]]
    return {"k": draw(k.shape, case.regime, k.dtype, generator), "v": draw(k.shape, case.regime, k.dtype, generator),
            "slots": slots}


def written(case: Case, inputs) -> dict[str, torch.Tensor]:
    shape = case.outputs["k_cache"].shape
    mask = torch.zeros(shape[0] * shape[1], dtype=torch.bool)
    mask[inputs["slots"].long()] = True
    full = mask.view(shape[:2])[..., None, None].expand(shape).clone()
    return {"k_cache": full, "v_cache": full}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    k = inputs["k"]
    empty = torch.zeros(attributes["blocks"], attributes["block_size"], *k.shape[1:], dtype=k.dtype, device=k.device)
    return {"k_cache": kv_cache_write_paged(empty, k, inputs["slots"]),
            "v_cache": kv_cache_write_paged(empty, inputs["v"], inputs["slots"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 3, 2, 16, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="kv_cache_write_paged", summary="cache.flat[slots[n]] = k[n]; v likewise",
        inputs=("k", "v", "slots"), outputs=("k_cache", "v_cache"), attributes=(),
        dtype_options={"k": FLOAT_DTYPES, "v": FLOAT_DTYPES, "slots": (*INDEX_DTYPES, DType.F32),
                       "k_cache": FLOAT_DTYPES, "v_cache": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=EXACT, written=written,
        bad_values=(
            BadValue("slots", "a slot past the cache",
                     lambda t, case: (last_element(t["slots"]),
                                      case.outputs["k_cache"].shape[0] * case.outputs["k_cache"].shape[1])),
            BadValue("slots", "a negative slot", lambda t, case: (first_element(t["slots"]), -1)),
            BadValue("slots", "a slot written twice", lambda t, case: ((1,), t["slots"][0].item())),
        ),
    )
