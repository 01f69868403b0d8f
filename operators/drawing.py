"""Drawing a case set from a spec's strategy outside pytest (for `python -m operators.run`)."""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Iterator

from hypothesis import HealthCheck, given, seed as hypothesis_seed, settings

from operators.case import Case
from operators.device import Device
from operators.dtypes import DType
from operators.profiles import GENERATE_ONLY
from operators.spec import OperatorSpec


def draw_cases(spec: OperatorSpec, device: Device, dtype: DType, examples: int, seed: int) -> list[Case]:
    """Up to `examples` distinct cases, the same ones for the same seed and dtype (each dtype draws
    its own shapes, regimes and layouts: three dtypes are three samples, not one sample thrice)."""
    drawn: dict[str, Case] = {}

    @settings(max_examples=examples, database=None, deadline=None, phases=GENERATE_ONLY,
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(dtype_seed(seed, dtype))
    @given(spec.cases(device, dtype))
    def collect(case: Case) -> None:
        drawn.setdefault(case.compact_json(), case)

    with seed_alone():
        collect()
    return list(drawn.values())


def dtype_seed(seed: int, dtype: DType) -> int:
    """One Hypothesis seed per (seed, dtype) pair, distinct for distinct pairs."""
    dtypes = list(DType)
    return seed * len(dtypes) + dtypes.index(dtype)


@contextmanager
def seed_alone() -> Iterator[None]:
    """Hypothesis mixes the literals of the caller's own modules into its draws (a pool it grows as
    modules are imported), so a seed would draw other cases after any edit of the harness, or when it
    runs installed rather than from a checkout. Within this block that pool is empty: the cases
    depend on the seed, the strategies and the Hypothesis version alone."""
    providers = importlib.import_module("hypothesis.internal.conjecture.providers")
    local_constants, constants = getattr(providers, "_get_local_constants", None), getattr(providers, "Constants", None)
    if local_constants is None or constants is None:  # a Hypothesis without the pool
        yield
        return
    providers._get_local_constants = constants
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = local_constants
        providers.CONSTANTS_CACHE.cache.clear()
