"""Accuracy of every operator, drawn by its spec's hypothesis strategy, on --device with --backend."""

import pytest
from hypothesis import given, strategies as st

from operators.dtypes import DType
from operators.registry import OPERATOR_NAMES


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
@given(data=st.data())
def test_operator(harness, operator, working_dtype, data):
    # Hypothesis seeds every parametrisation alike: a dtype-dependent number of draws first gives
    # each dtype its own cases (as operators.run's draw_cases does).
    for _ in range(list(DType).index(working_dtype)):
        data.draw(st.integers(0, 2**16))
    harness.assert_passes(data.draw(harness.cases(operator, working_dtype), label="case"))
