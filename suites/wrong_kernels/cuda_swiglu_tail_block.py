"""swiglu launched with numel / 256 blocks (rounded down): the last partial block is never written."""

from suites.wrong_kernels.cuda_library import wrong_cuda_backend

WRONG_OPERATOR = "swiglu"
EXPECTED_REASON = "left unwritten"
DEVICES = ("nvidia",)


def backend(device):
    return wrong_cuda_backend(__name__, WRONG_OPERATOR, device)
