"""The C ABI in kernels/include/qwen3_kernels.h against the specs: entry point q3_<operator> for every
operator, taking the spec's outputs, inputs and attributes in that order (tensors as q3_tensor,
attributes in the C type of operators/native_library/binding.py's table), then the stream."""

import re
from pathlib import Path

import pytest

from operators.native_library.binding import ATTRIBUTE_CODES, signature
from operators.core.registry import OPERATOR_NAMES, get_spec

HEADER = Path(__file__).resolve().parents[1] / "kernels" / "include" / "qwen3_kernels.h"
C_TYPES = {"q3_tensor": "t", "double": "d", "int64_t": "l", "int": "i"}


def declarations(text: str) -> dict[str, list[tuple[str, str]]]:
    """Entry point -> [(C type, parameter name)] of every `int q3_...(...);` declaration."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    found = {}
    for name, parameters in re.findall(r"\bint\s+(q3_\w+)\s*\(([^)]*)\)\s*;", text):
        pairs = [p.strip().rsplit(None, 1) for p in parameters.split(",") if p.strip() and p.strip() != "void"]
        found[name] = [(kind.replace(" ", "") + "*" * (len(pname) - len(pname.lstrip("*"))), pname.lstrip("*"))
                       for kind, pname in pairs]
    return found


@pytest.fixture(scope="module")
def header():
    return declarations(HEADER.read_text())


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_entry_point_matches_its_spec(header, operator):
    spec = get_spec(operator)
    parameters = header.get(f"q3_{operator}")
    assert parameters is not None, f"{HEADER.name} declares no q3_{operator}"
    *arguments, stream = parameters
    assert stream == ("void*", "stream"), f"q3_{operator}: last parameter {stream}, expected void *stream"
    assert [name for _, name in arguments] == [*spec.outputs, *spec.inputs, *spec.attributes]
    assert "".join(C_TYPES.get(kind, "?") for kind, _ in arguments) == signature(f"q3_{operator}")


def test_every_declared_entry_point_is_an_operator(header):
    helpers = {"q3_abi_version", "q3_take_deferred_error"}
    assert sorted(set(header) - helpers - {f"q3_{name}" for name in OPERATOR_NAMES}) == []


def test_every_attribute_has_a_c_type():
    assert {a for name in OPERATOR_NAMES for a in get_spec(name).attributes} <= set(ATTRIBUTE_CODES)
