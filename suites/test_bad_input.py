"""Values outside an operator's contract (ids past the vocabulary, a cache slot written twice, a
random value of 1, a block-table entry past the cache) sent to the backend under test: each call is
refused with KernelValueError naming the tensor, and nothing is written."""

import pytest

from operators.core.contract import check_bad_value
from operators.core.registry import OPERATOR_NAMES, get_spec

pytestmark = pytest.mark.backend_under_test

BAD_VALUES = [(name, bad) for name in OPERATOR_NAMES for bad in get_spec(name).bad_values]


@pytest.mark.parametrize("operator, bad", BAD_VALUES,
                         ids=[f"{name}[{bad.tensor}: {bad.what}]" for name, bad in BAD_VALUES])
def test_a_value_outside_the_contract_is_refused(harness, operator, bad):
    kernel = harness.backend.kernel(operator)
    if kernel is None:
        pytest.skip(f"backend '{harness.backend.name}' has no kernel for '{operator}'")
    result = check_bad_value(get_spec(operator), bad, kernel, harness.device)
    assert result.passed, f"{operator} [{result.combination}]: {result.detail}"
