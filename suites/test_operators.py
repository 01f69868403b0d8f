"""Accuracy of every operator, drawn by its spec's hypothesis strategy, on --device with --backend."""

import pytest
from hypothesis import given, strategies as st

from operators.core.drawing import boundary_cases
from operators.core.dtypes import DType
from operators.core.registry import OPERATOR_NAMES, get_spec

pytestmark = pytest.mark.backend_under_test


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
@given(data=st.data())
def test_operator(harness, operator, working_dtype, data):
    # Hypothesis seeds every parametrisation alike: a dtype-dependent number of draws first gives
    # each dtype its own cases (as operators.run's draw_cases does).
    for _ in range(list(DType).index(working_dtype)):
        data.draw(st.integers(0, 2**16))
    harness.assert_passes(data.draw(harness.cases(operator, working_dtype), label="case"))


@pytest.mark.parametrize("operator", [name for name in OPERATOR_NAMES if get_spec(name).lengths is not None])
def test_operator_at_its_boundaries(harness, operator, working_dtype, request):
    """One case per block/tile boundary class the operator reaches (rows past 256, 1024, 4096 items,
    keys past a split-KV chunk, odd token counts): drawn on purpose, not left to the sample's luck."""
    spec = get_spec(operator)
    seed = request.config.getoption("--seed") or 0
    for case in boundary_cases(spec, harness.device, working_dtype, seed):
        harness.assert_passes(case)
