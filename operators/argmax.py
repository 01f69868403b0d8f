"""argmax: greedy decoding, the index of the largest logit of each row: the first of tied maxima and
the first NaN (NaN counts as the largest), as torch.argmax and so transformers' greedy decoding."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from hypothesis import strategies as st

from operators.core import strategies as strat
from operators.core.case import Case, Layout, Regime, TensorCase
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.qwen3_configs import VOCAB_SIZE
from operators.core.spec import OperatorSpec
from operators.core.values import draw
from reference.sampling import argmax

CONTRACT = ("logits in f32/f16/bf16 [B, V]; out int64 [B]; the first index of the maximum, NaN counting as the "
            "largest value (the first NaN), as torch.argmax")
# What the values plant, row by row in a drawn rotation named in the case's note: tied maxima (first
# versus last index), a near tie one ulp of the working dtype apart (a kernel comparing in lower
# precision merges it), NaN, and nothing. A case of 8 rows holds all four.
PATTERNS = ("tied maxima", "near tie", "NaN", "plain")
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
                                                    Regime.MASKED, Regime.LARGE_SCORES), strat.seeds(),
                     strat.row_rotations(PATTERNS))


def random_column_per_row(logits: torch.Tensor, generator: torch.Generator,
                          low: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(row indices, one random column in [low, V) per row), to index logits[rows, columns]."""
    rows = torch.arange(logits.shape[0])
    return rows, torch.randint(low, logits.shape[-1], (logits.shape[0],), generator=generator)


def with_tied_maxima(logits: torch.Tensor, dtype: DType, generator: torch.Generator) -> torch.Tensor:
    """Each row's maximum copied to a second random position: the first of them is the answer."""
    tied = logits.clone()
    rows, other = random_column_per_row(tied, generator)
    tied[rows, other] = tied[rows, tied.argmax(-1)]
    return tied


def one_below(values: torch.Tensor, dtype: DType) -> torch.Tensor:
    """The next representable value of `dtype` below each (finite, non-zero) value."""
    bits = values.to(dtype.torch).view({2: torch.int16, 4: torch.int32}[dtype.torch.itemsize])
    step = torch.where(values > 0, -1, 1).to(bits.dtype)
    return (bits + step).view(dtype.torch).to(values.dtype)


def with_near_tie(logits: torch.Tensor, dtype: DType, generator: torch.Generator) -> torch.Tensor:
    """In each row the maximum m at a random position q >= 1 and the value one ulp below m at a random
    earlier position: both round to one value in a narrower type, whose first index is wrong."""
    near = logits.clone()
    top = near.max(-1).values
    usable = torch.isfinite(top) & (top != 0)
    below = one_below(torch.where(usable, top, 1.0), dtype)
    near = torch.where(near >= top[:, None], below[:, None], near)  # the maximum returns at one place only
    rows, latest = random_column_per_row(near, generator, low=1)
    earlier = (torch.rand(latest.shape, generator=generator, dtype=torch.float64) * latest).long()
    near[rows, earlier] = below
    near[rows, latest] = torch.where(usable, top, below)
    return torch.where(usable[:, None], near, logits)


def with_nan(logits: torch.Tensor, dtype: DType, generator: torch.Generator) -> torch.Tensor:
    """A NaN at a random position of each row, and a second one in every other row."""
    poisoned = logits.clone()
    rows, first = random_column_per_row(poisoned, generator)
    poisoned[rows, first] = math.nan
    rows, second = random_column_per_row(poisoned, generator)
    poisoned[rows[::2], second[::2]] = math.nan
    return poisoned


PLANTED = {"tied maxima": with_tied_maxima, "near tie": with_near_tie, "NaN": with_nan}


def values(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    logits = case.inputs["logits"]
    drawn = draw(logits.shape, case.regime, logits.dtype, generator)
    kinds = strat.row_kinds(case.note, drawn.shape[0])
    if kinds is None:  # a case written by hand plants nothing
        return {"logits": drawn}
    planted = {name: plant(drawn, logits.dtype, generator) for name, plant in PLANTED.items()}
    return {"logits": torch.stack([planted.get(kind, drawn)[row] for row, kind in enumerate(kinds)])}


def expected_index(values: torch.Tensor) -> int:
    nan = torch.isnan(values)
    best = nan if nan.any() else values == values.max()
    return int(torch.nonzero(best)[0])


def judge(decisions, inputs, attributes, dtype: DType) -> list[str]:
    logits, chosen = inputs["logits"], decisions["out"]
    wrong = []
    for row, (values, token) in enumerate(zip(logits, chosen.tolist())):
        expected = expected_index(values)
        if token != expected:
            got = f"logit {values[token].item()!r}" if 0 <= token < values.numel() else "outside the vocabulary"
            wrong.append(f"row {row}: token {token} ({got}); expected {expected}, the first "
                         f"{'NaN' if torch.isnan(values[expected]) else 'maximum'} (logit {values[expected].item()!r})")
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
        lengths=lambda case: {"row": case.inputs["logits"].shape[-1]},
    )
