"""Attention through one SDPA backend at a time (math, memory-efficient, flash, cuDNN).

The causal mask is given the way the fused backends take it (is_causal for a square prefill, a
lower-right CausalBias for several new tokens against a longer cache, nothing for one new token),
and kv heads are repeated as Hugging Face's SDPA path does, so that a backend refuses a case only
for what it really lacks (a dtype, a head size). A refusal raises KernelUnsupportedError: the case
is 'unsupported' for that member, not a failure."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

from operators.backends.backend import Backend
from operators.backends.torch_control import check_gqa, enforce_contract, sdpa_ready
from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelUnsupportedError
from reference.attention import gather_pages, repeat_kv

SDPA_BACKENDS = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                 "flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
# Which SDPA backends PyTorch has on a torch device type (the others fail every call there).
ON_DEVICE = {"cpu": ("math", "flash"), "cuda": ("math", "efficient", "flash", "cudnn")}
REFUSALS = ("No available kernel", "not supported", "Unsupported", "No viable backend")


def attend(operator: str, backend: SDPBackend, q, k, v, scale: float) -> torch.Tensor:
    """q [Tq, Hq, D], k/v [Tk, Hkv, D]; the queries are the last Tq of the Tk positions."""
    groups = q.shape[-2] // k.shape[-2]
    heads_first = [sdpa_ready(t).transpose(0, 1)[None] for t in (q, repeat_kv(k, groups), repeat_kv(v, groups))]
    queries, keys = q.shape[0], k.shape[0]
    causal = {} if queries == 1 else {"is_causal": True} if queries == keys else {
        "attn_mask": causal_lower_right(queries, keys)}
    try:
        with sdpa_kernel([backend]):
            out = F.scaled_dot_product_attention(*heads_first, scale=scale, **causal)
    except RuntimeError as error:
        if any(phrase in str(error) for phrase in REFUSALS):
            raise KernelUnsupportedError(operator, f"SDPA {backend.name} refuses the case: "
                                                   f"{str(error).splitlines()[0]}") from None
        raise
    return out[0].transpose(0, 1)


def kernels_for(backend: SDPBackend) -> dict:
    def prefill(*, out, q, k, v, scale):
        enforce_contract("attention_prefill", out=out, q=q, k=k, v=v)
        check_gqa("attention_prefill", q, k)
        out.copy_(attend("attention_prefill", backend, q, k, v, scale))

    def decode(*, out, q, k_cache, v_cache, seq_lens, scale):
        enforce_contract("attention_decode", out=out, q=q, k_cache=k_cache, v_cache=v_cache, seq_lens=seq_lens)
        check_gqa("attention_decode", q, k_cache)
        for b, length in enumerate(seq_lens.tolist()):
            out[b] = attend("attention_decode", backend, q[b], k_cache[b, :length], v_cache[b, :length], scale)

    def decode_paged(*, out, q, k_cache, v_cache, block_table, seq_lens, scale):
        enforce_contract("attention_decode_paged", out=out, q=q, k_cache=k_cache, v_cache=v_cache,
                         block_table=block_table, seq_lens=seq_lens)
        check_gqa("attention_decode_paged", q, k_cache)
        for b, length in enumerate(seq_lens.tolist()):
            keys, values = gather_pages(k_cache, block_table[b], length), gather_pages(v_cache, block_table[b], length)
            out[b] = attend("attention_decode_paged", backend, q[b], keys, values, scale)

    return {"attention_prefill": prefill, "attention_decode": decode, "attention_decode_paged": decode_paged}


def sdpa_backend(name: str, device: Device) -> Backend:
    backend = SDPA_BACKENDS[name]
    kernels = {op: Kernel(op, f, {"kind": "torch", "function": f"F.scaled_dot_product_attention [{backend.name}]"})
               for op, f in kernels_for(backend).items()}
    return Backend(name=f"sdpa-{name}", device=device, kernels=kernels,
                   description=f"PyTorch {torch.__version__} SDPA pinned to its {backend.name} backend")
