"""Attention through one SDPA backend at a time (math, memory-efficient, flash, cuDNN).

A backend that refuses a case (dtype, head size, device) raises KernelUnsupportedError: the case is
'unsupported' for that member, not a failure."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels.errors import KernelUnsupportedError
from operators.backends import torch_control
from operators.backends.backend import Backend
from operators.device import Device
from operators.kernel import Kernel

SDPA_BACKENDS = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                 "flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
# Which SDPA backends PyTorch has on a torch device type (the others fail every call there).
ON_DEVICE = {"cpu": ("math", "flash"), "cuda": ("math", "efficient", "flash", "cudnn")}
ATTENTION = ("attention_prefill", "attention_decode", "attention_decode_paged")
REFUSALS = ("No available kernel", "not supported", "Unsupported", "No viable backend")


def pinned(operator: str, function, backend: SDPBackend):
    """The torch control's attention kernel with SDPA pinned to one backend."""
    def kernel(**arguments) -> None:
        try:
            with sdpa_kernel([backend]):
                function(**arguments)
        except RuntimeError as error:
            if any(phrase in str(error) for phrase in REFUSALS):
                raise KernelUnsupportedError(operator, f"SDPA {backend.name} refuses the case: "
                                                       f"{str(error).splitlines()[0]}") from None
            raise
    return kernel


def sdpa_backend(name: str, device: Device) -> Backend:
    backend = SDPA_BACKENDS[name]
    kernels = {op: Kernel(op, pinned(op, getattr(torch_control, op), backend),
                          {"kind": "torch", "function": f"F.scaled_dot_product_attention [{backend.name}]"})
               for op in ATTENTION}
    return Backend(name=f"sdpa-{name}", device=device, kernels=kernels,
                   description=f"PyTorch {torch.__version__} SDPA pinned to its {backend.name} backend")
