"""Drawing a case set from a spec's strategy outside pytest (for `python -m operators.run`)."""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterable, Iterator

from hypothesis import HealthCheck, given, seed as hypothesis_seed, settings

from operators.core.case import Case
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.profiles import GENERATE_ONLY
from operators.core.registry import get_spec
from operators.core.spec import OperatorSpec

# Draws searched for the boundary classes (and for which classes a strategy reaches at all).
BOUNDARY_SEARCH = 300
REACH_SEED, BOUNDARY_SEED_OFFSET = 7_000_003, 1_000_003


def draw_cases(spec: OperatorSpec, device: Device, dtype: DType, examples: int, seed: int) -> list[Case]:
    """Up to `examples` distinct cases, the same ones for the same seed and dtype (each dtype draws
    its own shapes, regimes and layouts: three dtypes are three samples, not one sample thrice);
    then one case for each boundary class the operator reaches on the device that those missed."""
    drawn = sample(spec, device, dtype, examples, dtype_seed(seed, dtype))
    hit = {label for case in drawn for label in spec.boundary_labels(case)}
    missing = [label for label in reachable_boundaries(spec, device) if label not in hit]
    return drawn + boundary_cases(spec, device, dtype, seed, missing)


def boundary_cases(spec: OperatorSpec, device: Device, dtype: DType, seed: int,
                   labels: Iterable[str] | None = None) -> list[Case]:
    """One case per boundary label (default: every one the operator reaches on the device), drawn
    from the operator's own strategy at this seed: the first draw that carries the label."""
    wanted = list(reachable_boundaries(spec, device) if labels is None else labels)
    found: dict[str, Case] = {}

    def keep(case: Case) -> bool:
        for label in spec.boundary_labels(case):
            if label in wanted:
                found.setdefault(label, case)
        return len(found) == len(wanted)

    if wanted:
        sample(spec, device, dtype, BOUNDARY_SEARCH, dtype_seed(seed, dtype) + BOUNDARY_SEED_OFFSET, keep)
    return list({found[label].compact_json(): found[label] for label in wanted if label in found}.values())


def reachable_boundaries(spec: OperatorSpec, device: Device) -> tuple[str, ...]:
    """reachable_sample, computed once per operator and device in a process."""
    return _reachable(spec.name, device)


@lru_cache(maxsize=None)
def _reachable(operator: str, device: Device) -> tuple[str, ...]:
    return reachable_sample(get_spec(operator), device)


def reachable_sample(spec: OperatorSpec, device: Device) -> tuple[str, ...]:
    """The boundary labels of a large fixed sample of the operator's cases on the device: the
    classes its strategy can draw (a fixed seed, so the same set every run)."""
    if spec.lengths is None:
        return ()
    cases = sample(spec, device, DType.F32, BOUNDARY_SEARCH, REACH_SEED)
    return tuple(sorted({label for case in cases for label in spec.boundary_labels(case)}))


class _Enough(Exception):
    """Stops a sample early."""


def sample(spec: OperatorSpec, device: Device, dtype: DType, examples: int, hypothesis_seed_value: int,
           enough: Callable[[Case], bool] | None = None) -> list[Case]:
    """Up to `examples` distinct cases of the strategy at a Hypothesis seed; with `enough`, until it
    says so."""
    drawn: dict[str, Case] = {}

    @settings(max_examples=examples, database=None, deadline=None, phases=GENERATE_ONLY,
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(hypothesis_seed_value)
    @given(spec.cases(device, dtype))
    def collect(case: Case) -> None:
        drawn.setdefault(case.compact_json(), case)
        if enough is not None and enough(case):
            raise _Enough

    with seed_alone():
        try:
            collect()
        except _Enough:
            pass
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
