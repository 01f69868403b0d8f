"""attention_decode (CUDA) mapping query head h to kv head h % Hkv instead of h // (Hq / Hkv)."""

from suites.wrong_kernels.cuda_library import wrong_cuda_backend

WRONG_OPERATOR = "attention_decode"
EXPECTED_REASON = "exceeds its budget"
DEVICES = ("nvidia",)


def backend(device):
    return wrong_cuda_backend(__name__, WRONG_OPERATOR, device)
