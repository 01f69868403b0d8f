"""attention_decode_paged: new tokens attending to a paged KV cache through a block table."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import attention_shapes as shapes
from operators.core import sensitivity
from operators.core import strategies as strat
from operators.core.budget import ATTENTION
from operators.attention_decode import NEW_TOKENS, request_lengths
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw
from reference.online import chained_attention, flash_attention, scaled_in_float32_attention
from reference.attention import attention_decode_paged

CONTRACT = ("q, k_cache, v_cache and out in one dtype (f32/f16/bf16); block_table and seq_lens "
            "int32/int64; caches [blocks, block_size, Hkv, D]; unused block-table entries are never read")
BLOCK_SIZES = (16, 32)
SPARE_BLOCKS = 2  # blocks no request owns, full of NaN


def allows(d: Mapping[str, DType]) -> bool:
    floats = [n for n in d if n not in ("seq_lens", "block_table")]
    return (d["seq_lens"] in INDEX_DTYPES and d["block_table"] in INDEX_DTYPES
            and all(d[n] is d["q"] for n in floats))


def make_case(dtypes: Mapping[str, DType], batch: int, new_tokens: int, max_blocks: int, block_size: int,
              heads: int, kv_heads: int, head_dim: int, layouts: Mapping[str, Layout] | None = None,
              regime: Regime = Regime.NORMAL, seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    query = (batch, new_tokens, heads, head_dim)
    cache = (batch * max_blocks + SPARE_BLOCKS, block_size, kv_heads, head_dim)
    return Case(operator="attention_decode_paged",
                inputs={"q": tensor("q", query), "k_cache": tensor("k_cache", cache),
                        "v_cache": tensor("v_cache", cache), "block_table": tensor("block_table", (batch, max_blocks)),
                        "seq_lens": tensor("seq_lens", (batch,))},
                outputs={"out": tensor("out", query)}, attributes={"scale": head_dim ** -0.5},
                regime=regime, seed=seed, note=note or f"GQA {heads}/{kv_heads}, block size {block_size}")


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, batch, new_tokens, length, block_size, gqa, head_dim, layouts, regime, seed):
        max_blocks = -(-length // block_size)
        heads, kv_heads = shapes.scale_heads(*gqa, batch * new_tokens * length * head_dim, device)
        return make_case(dtypes, batch, min(new_tokens, length), max_blocks, block_size, heads, kv_heads, head_dim,
                         dict(zip(("q", "k_cache", "v_cache", "out"), layouts)), regime, seed,
                         f"GQA {gqa[0]}/{gqa[1]} as {heads}/{kv_heads}, block size {block_size}")

    return st.builds(build, strat.dtype_combos(spec(), working), shapes.batch_sizes(device),
                     st.sampled_from(NEW_TOKENS), shapes.cache_lengths(device), st.sampled_from(BLOCK_SIZES),
                     shapes.gqa_heads(), shapes.head_dims(), strat.layout_sets(4),
                     strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.LARGE_SCORES), strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    q, cache, table = case.inputs["q"], case.inputs["k_cache"], case.inputs["block_table"]
    batch, max_blocks = table.shape
    blocks, block_size = cache.shape[0], cache.shape[1]
    lengths = request_lengths(batch, q.shape[1], max_blocks * block_size, generator)
    owners = torch.randperm(blocks, generator=generator)[: batch * max_blocks].view(batch, max_blocks)
    used = torch.arange(max_blocks)[None, :] < ((lengths + block_size - 1) // block_size)[:, None]
    # Entries past a request's last block point nowhere valid: reading one is a bug.
    block_table = torch.where(used, owners, torch.full_like(owners, blocks + 1000))
    valid = torch.zeros(blocks, block_size, dtype=torch.bool)
    for b in range(batch):
        positions = torch.arange(int(lengths[b]))
        valid[owners[b, positions // block_size], positions % block_size] = True

    def cache_values() -> torch.Tensor:
        values = draw(cache.shape, Regime.NORMAL, cache.dtype, generator)
        return values.masked_fill(~valid[..., None, None], math.nan)

    return {"q": draw(q.shape, case.regime, q.dtype, generator), "k_cache": cache_values(),
            "v_cache": cache_values(), "block_table": block_table, "seq_lens": lengths}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": attention_decode_paged(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["block_table"],
                                          inputs["seq_lens"], attributes["scale"], upcast)}


def flash(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode_paged(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["block_table"],
                                          inputs["seq_lens"], attributes["scale"], attend=flash_attention)}


def chained(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode_paged(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["block_table"],
                                          inputs["seq_lens"], attributes["scale"], attend=chained_attention)}


def scaled_in_float32(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode_paged(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["block_table"],
                                          inputs["seq_lens"], attributes["scale"], attend=scaled_in_float32_attention)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 2, 1, 2, 16, 4, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="attention_decode_paged", summary="new tokens attend to a paged KV cache via a block table",
        inputs=("q", "k_cache", "v_cache", "block_table", "seq_lens"), outputs=("out",), attributes=("scale",),
        dtype_options={"q": FLOAT_DTYPES, "k_cache": FLOAT_DTYPES, "v_cache": FLOAT_DTYPES,
                       "block_table": INDEX_DTYPES, "seq_lens": (*INDEX_DTYPES, DType.F32), "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=ATTENTION, variants={"flash": flash, "chained_scores": chained,
                                                                 "float32_scale": scaled_in_float32}, sensitivity=sensitivity.decode_paged,
        bad_values=(
            BadValue("block_table", "a block past the cache, in a request's first entry",
                     lambda t, case: (first_element(t["block_table"]), t["k_cache"].shape[0])),
            BadValue("block_table", "a negative block, in a request's first entry",
                     lambda t, case: (first_element(t["block_table"]), -1)),
            BadValue("seq_lens", "a length past the request's blocks",
                     lambda t, case: (last_element(t["seq_lens"]),
                                      t["block_table"].shape[1] * t["k_cache"].shape[1] + 1)),
        ),
        lengths=lambda case: {"keys": case.inputs["block_table"].shape[1] * case.inputs["k_cache"].shape[1]},
    )
