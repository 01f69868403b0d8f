"""argmax: greedy decoding, the index of the largest logit of each row (ties: any tied index)."""

from __future__ import annotations

from typing import Mapping

import torch
from hypothesis import strategies as st

from operators import strategies as strat
from operators.case import Case, Layout, Regime, TensorCase
from operators.device import Device
from operators.dtypes import DType, FLOAT_DTYPES
from operators.qwen3_configs import VOCAB_SIZE
from operators.spec import OperatorSpec
from operators.values import draw
from reference.sampling import argmax

CONTRACT = "logits in f32/f16/bf16 [B, V]; out int64 [B]; NaN counts as the largest value, as torch.argmax"
SHOWN = 3


def allows(d: Mapping[str, DType]) -> bool:
    return d["logits"].is_float and d["out"] is DType.I64


def vocabularies(device: Device) -> st.SearchStrategy[int]:
    return st.sampled_from((2, 7, 1000, 4099) + (() if device is Device.CPU else (VOCAB_SIZE,)))


def make_case(dtypes: Mapping[str, DType], batch: int, vocab: int, layout: Layout = Layout.CONTIGUOUS,
              regime: Regime = Regime.NORMAL, seed: int = 0, note: str = "") -> Case:
    return Case(operator="argmax", inputs={"logits": TensorCase((batch, vocab), dtypes["logits"], layout)},
                outputs={"out": TensorCase((batch,), dtypes["out"])}, regime=regime, seed=seed, note=note)


def cases(device: Device, working: DType) -> st.SearchStrategy[Case]:
    return st.builds(make_case, strat.dtype_combos(spec(), working), st.sampled_from((1, 3, 8)), vocabularies(device),
                     strat.layouts(), strat.regimes(Regime.NORMAL, Regime.HEAVY_TAILED, Regime.CONSTANT_ROWS,
                                                    Regime.MASKED, Regime.LARGE_SCORES), strat.seeds())


def with_tied_maxima(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Copy each row's maximum to a second random position: ties greedy decoding must handle."""
    tied = logits.clone()
    top = tied.argmax(-1)
    other = torch.randint(0, tied.shape[-1], (tied.shape[0],), generator=generator)
    tied[torch.arange(tied.shape[0]), other] = tied[torch.arange(tied.shape[0]), top]
    return tied


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    logits = case.inputs["logits"]
    drawn = draw(logits.shape, case.regime, logits.dtype, generator)
    return {"logits": with_tied_maxima(drawn, generator) if case.seed % 2 else drawn}


def judge(decisions, inputs, attributes, dtype: DType) -> list[str]:
    logits, chosen = inputs["logits"], decisions["out"]
    wrong = []
    for row, (values, token) in enumerate(zip(logits, chosen.tolist())):
        nan = torch.isnan(values)
        best = nan if nan.any() else values == values.max()
        if not 0 <= token < values.numel() or not best[token]:
            got = f"logit {values[token].item()!r}" if 0 <= token < values.numel() else "outside the vocabulary"
            expected = torch.nonzero(best).flatten().tolist()
            wrong.append(f"row {row}: token {token} ({got}); expected one of {expected[:5]} "
                         f"(logit {values[expected[0]].item()!r})")
    return [f"output 'out': {len(wrong)} of {len(chosen)} rows wrong: " + "; ".join(wrong[:SHOWN])] if wrong else []


def reference(inputs, attributes, upcast: torch.dtype, decisions=None) -> dict[str, torch.Tensor]:
    return {"out": argmax(inputs["logits"])}


def contract_case(dtypes: Mapping[str, DType]) -> Case:
    return make_case(dtypes, 2, 9, note="dtype contract")


def spec() -> OperatorSpec:
    return OperatorSpec(
        name="argmax", summary="out[b] = argmax(logits[b])",
        inputs=("logits",), outputs=("out",), attributes=(),
        dtype_options={"logits": FLOAT_DTYPES, "out": (DType.I64, DType.I32)},
        allows=allows, contract=CONTRACT, cases=cases, values=values, reference=reference,
        contract_case=contract_case, decisions=("out",), judge=judge,
    )
