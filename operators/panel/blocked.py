"""Float32 blocked and online formulations of the long reductions, as kernels: softmax and causal
softmax with running maxima over column blocks, attention flash-style over key blocks, linear as a
split-K GEMM. Block sizes differ from the budget's ensemble on purpose (another correct order)."""

from __future__ import annotations

from operators.backends.backend import Backend
from operators.backends.torch_control import bottom_right_causal, enforce_contract
from operators.core.device import Device
from operators.core.kernel import Kernel
from reference.attention import attention_decode, attention_decode_paged, attention_prefill
from reference.online import flash_attention, online_causal_softmax, online_softmax, split_k_linear

SOFTMAX_BLOCK = 1024
KEY_BLOCK = 128
K_CHUNK = 256


def flash(q, k, v, mask, scale, upcast):
    return flash_attention(q, k, v, mask, scale, block=KEY_BLOCK)


def softmax(*, out, x):
    enforce_contract("softmax", out=out, x=x)
    out.copy_(online_softmax(x, SOFTMAX_BLOCK))


def causal_softmax(*, out, x):
    enforce_contract("causal_softmax", out=out, x=x)
    out.copy_(online_causal_softmax(x, bottom_right_causal(x.shape[-2], x.shape[-1], x.device), SOFTMAX_BLOCK))


def linear(*, out, x, weight, bias=None):
    enforce_contract("linear", out=out, x=x, weight=weight, bias=bias)
    out.copy_(split_k_linear(x, weight, bias, K_CHUNK))


def prefill(*, out, q, k, v, scale):
    enforce_contract("attention_prefill", out=out, q=q, k=k, v=v)
    out.copy_(attention_prefill(q, k, v, scale, attend=flash))


def decode(*, out, q, k_cache, v_cache, seq_lens, scale):
    enforce_contract("attention_decode", out=out, q=q, k_cache=k_cache, v_cache=v_cache, seq_lens=seq_lens)
    out.copy_(attention_decode(q, k_cache, v_cache, seq_lens, scale, attend=flash))


def decode_paged(*, out, q, k_cache, v_cache, block_table, seq_lens, scale):
    enforce_contract("attention_decode_paged", out=out, q=q, k_cache=k_cache, v_cache=v_cache,
                     block_table=block_table, seq_lens=seq_lens)
    out.copy_(attention_decode_paged(q, k_cache, v_cache, block_table, seq_lens, scale, attend=flash))


def blocked_backend(device: Device) -> Backend:
    functions = {"softmax": softmax, "causal_softmax": causal_softmax, "linear": linear, "attention_prefill": prefill,
                 "attention_decode": decode, "attention_decode_paged": decode_paged}
    kernels = {op: Kernel(op, f, {"kind": "torch", "function": f"blocked {f.__name__}"}) for op, f in functions.items()}
    return Backend(name="blocked", device=device, kernels=kernels,
                   description="float32 blocked/online formulations (online softmax, flash attention, split-K)")


def backend(device: Device) -> Backend:
    """This panel member as a backend module: `--backend operators.panel.blocked` (its replay lines load it)."""
    return blocked_backend(device)
