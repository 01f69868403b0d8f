"""The CUDA sources compile wherever nvcc is installed (CI has nvcc and no GPU): a build break is
caught without a GPU, every entry point of the ABI is exported, and without a GPU a call answers
with a typed error instead of crashing. The host-side validation of every CUDA entry point runs
before any device work, so its dtype contract is checked here too, on host tensors."""

import ctypes
import shutil

import pytest
import torch

from operators.backends.native import current_stream, entry_points
from operators.core.checker import build_inputs
from operators.core.contract import check_rejection
from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelError, KernelUnsupportedError
from operators.native_library.binding import NativeLibrary, describe
from operators.native_library.build import build, nvcc_path, nvidia_recipe
from operators.core.placement import place_poisoned_output
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.strategies import all_combos
from suites.wrong_kernels.cuda_library import wrong_cuda_recipe

pytestmark = pytest.mark.skipif(shutil.which(nvcc_path()) is None, reason="nvcc is not installed")


@pytest.fixture(scope="module")
def cuda_library() -> NativeLibrary:
    recipe = nvidia_recipe()
    return NativeLibrary.load(build(recipe), recipe.build_hash())


def test_every_entry_point_is_exported(cuda_library):
    assert [f"q3_{name}" for name in OPERATOR_NAMES if not hasattr(cuda_library.handle, f"q3_{name}")] == []


def test_the_wrong_cuda_kernels_compile():
    assert build(wrong_cuda_recipe()).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without a usable GPU")
def test_the_wrong_cuda_kernels_library_gives_adapters_for_what_it_exports():
    """That library exports only the entry points its wrong kernels replace; building the adapters
    must not look up the others (it did once, which broke every cuda_* wrong kernel on a GPU), and
    its rms_norm must answer a call (here: refusing host memory by a typed error). The error for an
    entry point it lacks: test_native_errors."""
    recipe = wrong_cuda_recipe()
    library = NativeLibrary.load(build(recipe), recipe.build_hash())
    assert not hasattr(library.handle, "q3_embedding")
    adapters = entry_points(library, current_stream(Device.CPU), None)
    x, out = torch.randn(4, 8), torch.full((4, 8), 7.0)
    with pytest.raises(KernelError, match="rms_norm: tensor 'x'"):
        adapters["rms_norm"][1](out=out, x=x, weight=torch.ones(8), eps=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without a usable GPU")
def test_host_tensors_get_a_typed_error(cuda_library):
    x, weight, out = torch.randn(4, 8), torch.ones(8), torch.full((4, 8), 7.0)
    with pytest.raises(KernelError, match="rms_norm: tensor 'x'"):
        cuda_library.call("q3_rms_norm", "rms_norm", describe("rms_norm", "out", out), describe("rms_norm", "x", x),
                          describe("rms_norm", "weight", weight), ctypes.c_double(1e-6), None)
    assert torch.all(out == 7.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without a usable GPU")
@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_cuda_validation_follows_the_dtype_contract(cuda_library, operator):
    """Disallowed dtype combinations: KernelDTypeError, nothing written (as on a GPU). Allowed ones
    pass validation and stop only at the device check, because the tensors are in host memory."""
    spec = get_spec(operator)
    symbol, adapter = entry_points(cuda_library, current_stream(Device.CPU), None)[operator]
    kernel = Kernel(operator, adapter, {"kind": "native", "symbol": symbol})
    host = torch.device("cpu")
    problems = []
    for dtypes in all_combos(spec.dtype_options):
        if not spec.allows(dtypes):
            result = check_rejection(spec, dtypes, kernel, Device.CPU)
            problems += [] if result.passed else [f"{result.combination}: {result.detail}"]
            continue
        case = spec.contract_case(dtypes)
        inputs = {n: p.view for n, p in build_inputs(spec, case, host).items()}
        outputs = {n: place_poisoned_output(case.outputs[n], host).view for n in spec.outputs}
        try:
            kernel(**outputs, **inputs, **{n: case.attributes[n] for n in spec.attributes})
            problems.append(f"{dtypes}: a call on host memory returned success")
        except KernelUnsupportedError as error:
            if "CUDA memory" not in str(error) and "host memory" not in str(error):
                problems.append(f"{dtypes}: {error}")
        except KernelError as error:
            problems.append(f"{dtypes}: rejected an allowed combination: {type(error).__name__}: {error}")
    assert problems == []
