"""The CUDA sources compile wherever nvcc is installed (CI has nvcc and no GPU): a build break is
caught without a GPU, every entry point of the ABI is exported, and without a GPU a call answers
with a typed error instead of crashing."""

import ctypes
import shutil

import pytest
import torch

from kernels.binding import SIGNATURES, NativeLibrary, describe
from kernels.build import build, nvcc_path, nvidia_recipe
from kernels.errors import KernelError
from suites.wrong_kernels.cuda_library import wrong_cuda_recipe

pytestmark = pytest.mark.skipif(shutil.which(nvcc_path()) is None, reason="nvcc is not installed")


@pytest.fixture(scope="module")
def cuda_library() -> NativeLibrary:
    recipe = nvidia_recipe()
    return NativeLibrary.load(build(recipe), recipe.build_hash())


def test_every_entry_point_is_exported(cuda_library):
    assert [s for s in SIGNATURES if not hasattr(cuda_library.handle, s)] == []


def test_the_wrong_cuda_kernels_compile():
    assert build(wrong_cuda_recipe()).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without a usable GPU")
def test_host_tensors_get_a_typed_error(cuda_library):
    x, weight, out = torch.randn(4, 8), torch.ones(8), torch.full((4, 8), 7.0)
    with pytest.raises(KernelError, match="rms_norm: tensor 'x'"):
        cuda_library.call("q3_rms_norm", "rms_norm", describe("rms_norm", "out", out), describe("rms_norm", "x", x),
                          describe("rms_norm", "weight", weight), ctypes.c_double(1e-6), None)
    assert torch.all(out == 7.0)
