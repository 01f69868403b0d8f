"""Liger-Kernel's Triton kernels (an optional extra, NVIDIA only) as a panel member: RMSNorm and the
fused residual-add RMSNorm in Hugging Face's 'llama' casting, SiLU-and-multiply, NeoX rope and the
float32 softmax. Layouts or sizes Liger does not take are 'unsupported' with the reason."""

from __future__ import annotations

import importlib
import importlib.metadata

import torch

from operators.backends.backend import Backend, BackendError
from operators.backends.torch_control import enforce_contract
from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelUnsupportedError
from reference.rope import NEOX, cos_sin


def liger_ops():
    try:
        return {name: importlib.import_module(f"liger_kernel.ops.{name}")
                for name in ("rms_norm", "fused_add_rms_norm", "swiglu", "rope", "softmax")}
    except ImportError as error:
        raise BackendError(f"Liger-Kernel is not installed ({error}); pip install liger-kernel") from None


def refusing(operator: str, function):
    """Liger's own size limits (a row over 65536 elements) become 'unsupported'."""
    def kernel(**arguments) -> None:
        try:
            function(**arguments)
        except RuntimeError as error:
            if "exceeds the recommended Triton blocksize" in str(error):
                raise KernelUnsupportedError(operator, f"Liger: {error}") from None
            raise
    return kernel


def liger_backend(device: Device) -> Backend:
    if device is not Device.NVIDIA:
        raise BackendError("Liger-Kernel's Triton kernels run on NVIDIA GPUs only")
    ops = liger_ops()

    def rms_norm(*, out, x, weight, eps):
        enforce_contract("rms_norm", out=out, x=x, weight=weight)
        out.copy_(ops["rms_norm"].LigerRMSNormFunction.apply(x, weight, eps, 0.0, "llama", False))

    def add_rms_norm(*, out, sum, x, residual, weight, eps):
        enforce_contract("add_rms_norm", out=out, sum=sum, x=x, residual=residual, weight=weight)
        normed, total = ops["fused_add_rms_norm"].LigerFusedAddRMSNormFunction.apply(
            x, residual, weight, eps, 0.0, "llama", False)
        sum.copy_(total)
        out.copy_(normed)

    def swiglu(*, out, gate, up):
        enforce_contract("swiglu", out=out, gate=gate, up=up)
        out.copy_(ops["swiglu"].LigerSiLUMulFunction.apply(gate, up))

    def rope(*, out, x, positions, theta, layout):
        enforce_contract("rope", out=out, x=x, positions=positions)
        if layout != NEOX:
            raise KernelUnsupportedError("rope", f"Liger rotates NeoX halves only, not '{layout}' pairs")
        cos, sin = cos_sin(positions, x.shape[-1], theta, x.dtype, torch.float32, NEOX)
        # Liger rotates in place: a copy, viewed [batch 1, heads, tokens, head_dim].
        queries = x.clone()[None].transpose(1, 2)
        keys = queries[:, :1].clone()
        rotated, _ = ops["rope"].LigerRopeFunction.apply(queries, keys, cos[:, 0][None], sin[:, 0][None])
        out.copy_(rotated.transpose(1, 2)[0])

    def softmax(*, out, x):
        enforce_contract("softmax", out=out, x=x)
        if x.dtype is not torch.float32:
            raise KernelUnsupportedError("softmax", "Liger's softmax does its arithmetic in the input dtype; "
                                                    "Qwen3's softmax is computed in float32")
        out.copy_(ops["softmax"].LigerSoftmaxFunction.apply(x))

    functions = {"rms_norm": rms_norm, "add_rms_norm": add_rms_norm, "swiglu": swiglu, "rope": rope,
                 "softmax": softmax}
    version = liger_version()
    kernels = {op: Kernel(op, refusing(op, f), {"kind": "liger", "function": f"liger_kernel {op}"})
               for op, f in functions.items()}
    return Backend(name="liger", device=device, kernels=kernels, version=version,
                   description=f"Liger-Kernel {version or ''} Triton kernels".replace("  ", " "))


def liger_version() -> str | None:
    """The installed Liger-Kernel's version (its package states none; its distribution does)."""
    try:
        return importlib.metadata.version("liger-kernel")
    except importlib.metadata.PackageNotFoundError:
        return getattr(importlib.import_module("liger_kernel"), "__version__", None)


def backend(device: Device) -> Backend:
    """This panel member as a backend module: `--backend operators.panel.liger` (its replay lines load it)."""
    return liger_backend(device)
