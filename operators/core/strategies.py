"""Hypothesis building blocks shared by the operator specs."""

from __future__ import annotations

import itertools
from typing import Mapping

from hypothesis import strategies as st

from operators.core.case import Layout, Regime
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.qwen3_configs import AWKWARD_SIZES, QWEN3_CONFIGS


# Every regime but MASKED: a norm of a row holding -inf has no single correct answer (Hugging Face's
# formula gives 0 for its finite elements, PyTorch's fused CUDA RMSNorm NaN for the whole row), and
# Qwen3 never feeds one a mask; -inf is drawn only where the operator gives it a meaning.
FINITE_REGIMES = tuple(regime for regime in Regime if regime is not Regime.MASKED)


def seeds() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2**31 - 1)


def layouts() -> st.SearchStrategy[Layout]:
    return st.sampled_from(list(Layout))


def layout_sets(count: int) -> st.SearchStrategy[tuple[Layout, ...]]:
    """Layouts of `count` tensors: half the cases all CONTIGUOUS (aligned: the vectorised fast paths
    of a kernel), the others drawn per tensor (offsets, padded rows, reversed strides)."""
    return st.one_of(st.just((Layout.CONTIGUOUS,) * count), st.tuples(*(layouts() for _ in range(count))))


def regimes(*allowed: Regime) -> st.SearchStrategy[Regime]:
    return st.sampled_from(allowed or list(Regime))


def token_counts(device: Device) -> st.SearchStrategy[int]:
    if device is Device.CPU:
        return st.sampled_from((1, 2, 3, 5, 8, 13, 33))
    return st.sampled_from((1, 7, 32, 129, 1024, 4096))


def hidden_sizes() -> st.SearchStrategy[int]:
    """Real Qwen3 hidden sizes, and sizes that are not multiples of a vector width."""
    real = sorted({c.hidden for c in QWEN3_CONFIGS})
    return st.one_of(st.sampled_from(real), st.sampled_from(AWKWARD_SIZES))


def all_combos(options: Mapping[str, tuple[DType, ...]]) -> list[dict[str, DType]]:
    names = list(options)
    return [dict(zip(names, picked)) for picked in itertools.product(*(options[n] for n in names))]


def working_dtype(spec, combo: Mapping[str, DType]) -> DType:
    """The dtype of the first float output, else of the first float input (as Case.dtype)."""
    names = [n for n in (*spec.outputs, *spec.inputs) if n in combo]
    return next((combo[n] for n in names if combo[n].is_float), combo[names[0]])


def allowed_combos(spec, working: DType) -> list[dict[str, DType]]:
    """The dtype combinations inside spec's contract with the given working dtype."""
    return [c for c in all_combos(spec.dtype_options) if spec.allows(c) and working_dtype(spec, c) is working]


def dtype_combos(spec, working: DType) -> st.SearchStrategy[dict[str, DType]]:
    combos = allowed_combos(spec, working)
    if not combos:
        raise ValueError(f"{spec.name}: no allowed dtype combination writes {working.value}")
    return st.sampled_from(combos)


ROWS_NOTE = "rows: "


def row_rotations(kinds: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A case note naming the kind of values each row gets: `kinds` in a drawn rotation, row r taking
    the (r mod n)-th, so a batch of n rows or more holds every kind."""
    return st.integers(0, len(kinds) - 1).map(lambda start: ROWS_NOTE + ", ".join(kinds[start:] + kinds[:start]))


def row_kinds(note: str, rows: int) -> list[str] | None:
    """The kind of each of `rows` rows named by a row_rotations note; None for another note (a case
    written by hand)."""
    if not note.startswith(ROWS_NOTE):
        return None
    order = note[len(ROWS_NOTE):].split(", ")
    return [order[row % len(order)] for row in range(rows)]
