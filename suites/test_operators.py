"""Accuracy of every operator, drawn by its spec's hypothesis strategy, on --device with --backend."""

import pytest
from hypothesis import given, strategies as st

from operators.registry import OPERATOR_NAMES


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
@given(data=st.data())
def test_operator(harness, operator, working_dtype, data):
    harness.assert_passes(data.draw(harness.cases(operator, working_dtype), label="case"))
