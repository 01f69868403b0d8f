"""attention_decode: new tokens of a batch of requests attending to a contiguous KV cache."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import attention_shapes as shapes
from operators.core import sensitivity
from operators.core import strategies as strat
from operators.core.budget import ATTENTION
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw
from reference.online import chained_attention, flash_attention, scaled_in_float32_attention
from reference.attention import attention_decode

CONTRACT = ("q, k_cache, v_cache and out in one dtype (f32/f16/bf16); seq_lens int32/int64; "
            "q [B, S, Hq, D], caches [B, L, Hkv, D], S <= seq_lens[b] <= L")
NEW_TOKENS = (1, 2, 4)  # one-token decode, and several (speculative decoding, chunked prefill)


def allows(d: Mapping[str, DType]) -> bool:
    floats = [n for n in d if n != "seq_lens"]
    return d["seq_lens"] in INDEX_DTYPES and all(d[n] is d["q"] for n in floats)


def make_case(dtypes: Mapping[str, DType], batch: int, new_tokens: int, length: int, heads: int, kv_heads: int,
              head_dim: int, layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL,
              seed: int = 0, note: str = "") -> Case:
    layouts = layouts or {}

    def tensor(name: str, shape: tuple[int, ...]) -> TensorCase:
        return TensorCase(shape, dtypes[name], layouts.get(name, Layout.CONTIGUOUS))

    query = (batch, new_tokens, heads, head_dim)
    cache = (batch, length, kv_heads, head_dim)
    return Case(operator="attention_decode",
                inputs={"q": tensor("q", query), "k_cache": tensor("k_cache", cache),
                        "v_cache": tensor("v_cache", cache), "seq_lens": tensor("seq_lens", (batch,))},
                outputs={"out": tensor("out", query)}, attributes={"scale": head_dim ** -0.5},
                regime=regime, seed=seed, note=note or f"GQA {heads}/{kv_heads}")


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    def build(dtypes, batch, new_tokens, length, gqa, head_dim, layouts, regime, seed):
        heads, kv_heads = shapes.scale_heads(*gqa, batch * new_tokens * length * head_dim, device)
        return make_case(dtypes, batch, min(new_tokens, length), length, heads, kv_heads, head_dim,
                         dict(zip(("q", "k_cache", "v_cache", "out"), layouts)), regime, seed,
                         f"GQA {gqa[0]}/{gqa[1]} as {heads}/{kv_heads}")

    return st.builds(build, strat.dtype_combos(spec(), working), shapes.batch_sizes(device),
                     st.sampled_from(NEW_TOKENS), shapes.cache_lengths(device), shapes.gqa_heads(),
                     shapes.head_dims(), strat.layout_sets(4),
                     strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.LARGE_SCORES), strat.seeds())


def request_lengths(batch: int, new_tokens: int, capacity: int, generator: torch.Generator) -> torch.Tensor:
    """Different past lengths in one batch, including a full cache and a request with no past."""
    lengths = torch.randint(new_tokens, capacity + 1, (batch,), generator=generator)
    lengths[0] = capacity
    if batch > 1:
        lengths[-1] = new_tokens
    return lengths


def poison_beyond(cache: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """NaN in every cache position at or past a request's length: a kernel that reads one shows it."""
    positions = torch.arange(cache.shape[1])[None, :]
    return cache.masked_fill((positions >= lengths[:, None])[..., None, None], math.nan)


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    q, cache = case.inputs["q"], case.inputs["k_cache"]
    lengths = request_lengths(q.shape[0], q.shape[1], cache.shape[1], generator)
    return {"q": draw(q.shape, case.regime, q.dtype, generator),
            "k_cache": poison_beyond(draw(cache.shape, Regime.NORMAL, cache.dtype, generator), lengths),
            "v_cache": poison_beyond(draw(cache.shape, Regime.NORMAL, cache.dtype, generator), lengths),
            "seq_lens": lengths}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": attention_decode(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["seq_lens"],
                                    attributes["scale"], upcast)}


def flash(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["seq_lens"],
                                    attributes["scale"], attend=flash_attention)}


def chained(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["seq_lens"],
                                    attributes["scale"], attend=chained_attention)}


def scaled_in_float32(inputs, attributes) -> dict[str, torch.Tensor]:
    return {"out": attention_decode(inputs["q"], inputs["k_cache"], inputs["v_cache"], inputs["seq_lens"],
                                    attributes["scale"], attend=scaled_in_float32_attention)}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 2, 2, 6, 4, 2, 8, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="attention_decode", summary="new tokens attend to a contiguous KV cache of per-request length",
        inputs=("q", "k_cache", "v_cache", "seq_lens"), outputs=("out",), attributes=("scale",),
        dtype_options={"q": FLOAT_DTYPES, "k_cache": FLOAT_DTYPES, "v_cache": FLOAT_DTYPES,
                       "seq_lens": (*INDEX_DTYPES, DType.F32), "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=ATTENTION, variants={"flash": flash, "chained_scores": chained,
                                                                 "float32_scale": scaled_in_float32}, sensitivity=sensitivity.decode,
        bad_values=(
            BadValue("seq_lens", "a length past the cache",
                     lambda t, case: (last_element(t["seq_lens"]), t["k_cache"].shape[1] + 1)),
            BadValue("seq_lens", "a length shorter than the new tokens",
                     lambda t, case: (first_element(t["seq_lens"]), t["q"].shape[1] - 1)),
        ),
        lengths=lambda case: {"keys": case.inputs["k_cache"].shape[1]},
    )
