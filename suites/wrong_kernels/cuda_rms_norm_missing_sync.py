"""rms_norm whose shared-memory reduction lacks __syncthreads(): warps race on the partial sums."""

from suites.wrong_kernels.cuda_library import wrong_cuda_backend

WRONG_OPERATOR = "rms_norm"
EXPECTED_REASON = "exceeds its budget"
DEVICES = ("nvidia",)


def backend(device):
    return wrong_cuda_backend(__name__, WRONG_OPERATOR, device)
