"""Drawing a case set from a spec's strategy outside pytest (for `python -m operators.run`)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, seed as hypothesis_seed, settings

from operators.case import Case
from operators.device import Device
from operators.dtypes import DType
from operators.profiles import GENERATE_ONLY
from operators.spec import OperatorSpec


def draw_cases(spec: OperatorSpec, device: Device, dtype: DType, examples: int, seed: int) -> list[Case]:
    """Up to `examples` distinct cases, the same ones for the same seed."""
    drawn: dict[str, Case] = {}

    @settings(max_examples=examples, database=None, deadline=None, phases=GENERATE_ONLY,
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(spec.cases(device, dtype))
    def collect(case: Case) -> None:
        drawn.setdefault(case.compact_json(), case)

    collect()
    return list(drawn.values())
