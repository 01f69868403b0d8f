"""The control backend: PyTorch's own production operators, not the reference functions.

It must pass every case; a failure here is a false alarm of the verdict, not a kernel bug."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.errors import KernelDTypeError, KernelShapeError, KernelValueError
from operators.backends.backend import Backend
from operators.device import Device
from operators.dtypes import DType
from operators.kernel import Kernel
from operators.registry import get_spec


def enforce_contract(operator: str, **tensors: torch.Tensor | None) -> None:
    """Reject a dtype combination outside the spec's contract, as a native kernel must."""
    spec = get_spec(operator)
    try:
        dtypes = {name: DType.of(t.dtype) for name, t in tensors.items() if t is not None and name in spec.dtype_options}
    except ValueError as error:
        raise KernelDTypeError(operator, str(error)) from None
    if not spec.allows(dtypes):
        combination = " ".join(f"{n}={d.short}" for n, d in dtypes.items())
        raise KernelDTypeError(operator, f"dtype combination {combination} is outside the contract: {spec.contract}")


def embedding(*, out, ids, weight):
    enforce_contract("embedding", out=out, ids=ids, weight=weight)
    if ids.numel() and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        raise KernelValueError("embedding", f"tensor 'ids' holds values outside [0, {weight.shape[0]})")
    out.copy_(F.embedding(ids, weight))


def rms_norm(*, out, x, weight, eps):
    enforce_contract("rms_norm", out=out, x=x, weight=weight)
    normed = F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    out.copy_(normed * weight)


def add_rms_norm(*, out, sum, x, residual, weight, eps):
    enforce_contract("add_rms_norm", out=out, sum=sum, x=x, residual=residual, weight=weight)
    torch.add(x, residual, out=sum)
    out.copy_(F.rms_norm(sum.float(), (x.shape[-1],), eps=eps).to(x.dtype) * weight)


def linear(*, out, x, weight, bias=None):
    enforce_contract("linear", out=out, x=x, weight=weight, bias=bias)
    out.copy_(F.linear(x, weight, bias))


def rope(*, out, x, positions, theta, layout):
    """Rotation as a complex product, pairing elements per layout (a different formulation)."""
    enforce_contract("rope", out=out, x=x, positions=positions)
    if layout not in ("neox", "gptj"):
        raise KernelValueError("rope", f"unknown layout '{layout}'")
    if x.dim() != 3 or x.shape[-1] % 2:
        raise KernelShapeError("rope", "x must be [tokens, heads, head_dim] with an even head_dim")
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (theta ** (torch.arange(0, half, device=x.device, dtype=torch.float32) * 2 / x.shape[-1]))
    angles = positions.double()[:, None] * inv_freq.double()[None, :]
    rotation = torch.polar(torch.ones_like(angles), angles)[:, None, :]
    pairs = torch.stack((x[..., :half], x[..., half:]), -1) if layout == "neox" else x.unflatten(-1, (half, 2))
    turned = torch.view_as_real(torch.view_as_complex(pairs.double().contiguous()) * rotation)
    result = torch.cat((turned[..., 0], turned[..., 1]), -1) if layout == "neox" else turned.flatten(-2)
    out.copy_(result)


def swiglu(*, out, gate, up):
    enforce_contract("swiglu", out=out, gate=gate, up=up)
    out.copy_(F.silu(gate) * up)


def torch_backend(device: Device) -> Backend:
    functions = {"embedding": embedding, "rms_norm": rms_norm, "add_rms_norm": add_rms_norm,
                 "linear": linear, "rope": rope, "swiglu": swiglu}
    kernels = {op: Kernel(op, f, {"kind": "torch", "function": f"torch control {f.__name__}"}) for op, f in functions.items()}
    return Backend(name="torch", device=device, kernels=kernels,
                   description=f"PyTorch {torch.__version__} production operators (control)")
