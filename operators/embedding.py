"""embedding: the token-embedding gather of Qwen3Model.embed_tokens."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.budget import EXACT
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES, INDEX_DTYPES
from operators.core.qwen3_configs import VOCAB_SIZE
from operators.core.spec import BadValue, OperatorSpec, first_element, last_element
from operators.core.values import draw
from reference.embedding import embedding

CONTRACT = "ids in int32/int64, every id in [0, vocab); weight in f32/f16/bf16; out in weight's dtype"


def allows(d: Mapping[str, DType]) -> bool:
    return d["ids"] in INDEX_DTYPES and d["weight"].is_float and d["out"] is d["weight"]


def make_case(dtypes: Mapping[str, DType], ids_shape: tuple[int, ...], vocab: int, hidden: int,
              layouts: Mapping[str, Layout] | None = None, regime: Regime = Regime.NORMAL, seed: int = 0,
              note: str = "") -> Case:
    layouts = layouts or {}
    return Case(
        operator="embedding",
        inputs={"ids": TensorCase(ids_shape, dtypes["ids"], layouts.get("ids", Layout.CONTIGUOUS)),
                "weight": TensorCase((vocab, hidden), dtypes["weight"], layouts.get("weight", Layout.CONTIGUOUS))},
        outputs={"out": TensorCase(ids_shape + (hidden,), dtypes["out"], layouts.get("out", Layout.CONTIGUOUS))},
        regime=regime, seed=seed, note=note,
    )


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    # The full Qwen3 vocabulary only where memory allows it; small and prime vocabularies elsewhere.
    vocabs = (7, 97, 1000) if device is Device.CPU else (97, 4099, VOCAB_SIZE)
    ids_shape = st.one_of(st.tuples(strat.token_counts(device)),
                          st.tuples(st.sampled_from((1, 2, 3)), strat.token_counts(device)))
    return st.builds(
        lambda dtypes, shape, vocab, hidden, layouts, regime, seed: make_case(
            dtypes, shape, vocab, hidden, dict(zip(("ids", "weight", "out"), layouts)), regime, seed,
            "full Qwen3 vocabulary" if vocab == VOCAB_SIZE else ""),
        strat.dtype_combos(spec(), working), ids_shape, st.sampled_from(vocabs), strat.hidden_sizes(),
        strat.layout_sets(3),
        strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.OUTLIER_CHANNELS, Regime.NEAR_LIMIT),
        strat.seeds())


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    ids_case, weight_case = case.inputs["ids"], case.inputs["weight"]
    vocab = weight_case.shape[0]
    ids = torch.randint(0, vocab, ids_case.shape, generator=generator, dtype=torch.int64)
    flat = ids.view(-1)
    if flat.numel() >= 2:  # the first and last rows of the table are where off-by-one gathers show
        flat[0], flat[-1] = 0, vocab - 1
    return {"ids": ids, "weight": draw(weight_case.shape, case.regime, weight_case.dtype, generator)}


def reference(inputs, attributes, upcast: torch.dtype) -> dict[str, torch.Tensor]:
    return {"out": embedding(inputs["ids"], inputs["weight"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, (5,), 11, 9, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="embedding", summary="out[..., :] = weight[ids[...], :]",
        inputs=("ids", "weight"), outputs=("out",), attributes=(),
        dtype_options={"ids": (*INDEX_DTYPES, DType.F32), "weight": FLOAT_DTYPES, "out": FLOAT_DTYPES},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, budget=EXACT,
        bad_values=(
            BadValue("ids", "an id equal to the vocabulary size",
                     lambda t, case: (last_element(t["ids"]), t["weight"].shape[0])),
            BadValue("ids", "a negative id", lambda t, case: (first_element(t["ids"]), -1)),
        ),
    )
