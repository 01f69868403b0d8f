"""torch.compile of the Hugging Face formulas (reference/ in float32, Inductor's generated code:
Triton on NVIDIA, C++ on the CPU) as a panel member. Inputs are copied to fresh contiguous
tensors first so a layout or a storage offset does not force a recompilation; whole graphs only
(fullgraph), so nothing silently runs eagerly."""

from __future__ import annotations

import sys

import torch
from torch.fx.experimental import _config as shape_config

from operators.backends.backend import Backend
from operators.backends.torch_control import bottom_right_causal, enforce_contract
from operators.core.device import Device
from operators.core.kernel import Kernel
from reference.add_rms_norm import add_rms_norm as hf_add_rms_norm
from reference.attention import eager_attention, gather_pages
from reference.linear import linear as hf_linear
from reference.moe import moe_router as hf_moe_router
from reference.rms_norm import rms_norm as hf_rms_norm
from reference.rope import inverse_frequencies, rotate as hf_rotate
from reference.softmax import causal_softmax as hf_causal_softmax, softmax as hf_softmax
from reference.swiglu import swiglu as hf_swiglu

RECOMPILE_LIMIT = 512  # shapes x dtypes x attributes of a long run; past it dynamo would run eagerly


def fresh(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone(memory_format=torch.contiguous_format)


def compiled_backend(device: Device) -> Backend:
    dynamo = torch._dynamo.config
    for option in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                   "accumulated_cache_size_limit"):
        if hasattr(dynamo, option):
            setattr(dynamo, option, max(getattr(dynamo, option), RECOMPILE_LIMIT))

    # Size-oblivious shapes on the CPU only: on CUDA, Inductor (2.11) could not lower some graphs that
    # way and generated a looped softmax over 151936 columns 12x less accurate than an online one,
    # where the ordinary dynamic shapes users compile with gave neither.
    size_oblivious = device is Device.CPU

    def compiled(function):
        graph = torch.compile(function, dynamic=True, fullgraph=True)

        def per_shape_class(*tensors_and_attributes):  # a code object of its own: its own graphs
            return function(*tensors_and_attributes)
        fallback = torch.compile(per_shape_class, dynamic=True, fullgraph=True)
        oblivious_failed: list[str] = []

        def call(*tensors_and_attributes):
            if size_oblivious and not oblivious_failed:
                try:
                    # Without these, every size-1 dimension and every pair of equal sizes or storage
                    # offsets becomes a guard: a long run recompiled for most cases (two thirds of a GPU
                    # panel's time), where one graph per dtype, rank and layout serves them all.
                    with shape_config.patch(backed_size_oblivious=True, use_duck_shape=False):
                        return graph(*tensors_and_attributes)
                except torch._dynamo.exc.BackendCompilerFailed as error:
                    # Some Inductor versions cannot lower some graphs size-obliviously (2.11 on
                    # CUDA: "CantSplit" in add_rms_norm, "unbacked_bindings" in rope); the same
                    # formula is then compiled with Inductor's ordinary dynamic shapes.
                    oblivious_failed.append(str(error).splitlines()[0][:200])
                    print(f"compiled: Inductor could not compile {function.__name__} size-obliviously "
                          f"({oblivious_failed[0]}); compiling it with ordinary dynamic shapes", file=sys.stderr)
            return fallback(*tensors_and_attributes)
        return call

    rms, add_rms, rotate, silu_mul = compiled(hf_rms_norm), compiled(hf_add_rms_norm), compiled(hf_rotate), compiled(hf_swiglu)
    soft, causal_soft, project = compiled(hf_softmax), compiled(hf_causal_softmax), compiled(hf_linear)
    attend, route = compiled(eager_attention), compiled(hf_moe_router)

    def rms_norm(*, out, x, weight, eps):
        enforce_contract("rms_norm", out=out, x=x, weight=weight)
        out.copy_(rms(fresh(x), fresh(weight), eps))

    def add_rms_norm(*, out, sum, x, residual, weight, eps):
        enforce_contract("add_rms_norm", out=out, sum=sum, x=x, residual=residual, weight=weight)
        total, normed = add_rms(fresh(x), fresh(residual), fresh(weight), eps)
        sum.copy_(total)
        out.copy_(normed)

    def rope(*, out, x, positions, theta, layout):
        enforce_contract("rope", out=out, x=x, positions=positions)
        inv_freq = inverse_frequencies(x.shape[-1], theta, x.device)  # the model's buffer, an input of the graph
        out.copy_(rotate(fresh(x), fresh(positions), inv_freq, layout))

    def swiglu(*, out, gate, up):
        enforce_contract("swiglu", out=out, gate=gate, up=up)
        out.copy_(silu_mul(fresh(gate), fresh(up)))

    def softmax(*, out, x):
        enforce_contract("softmax", out=out, x=x)
        out.copy_(soft(fresh(x)))

    def causal_softmax(*, out, x):
        enforce_contract("causal_softmax", out=out, x=x)
        out.copy_(causal_soft(fresh(x)))

    def linear(*, out, x, weight, bias=None):
        enforce_contract("linear", out=out, x=x, weight=weight, bias=bias)
        out.copy_(project(fresh(x), fresh(weight), None if bias is None else fresh(bias)))

    def attention_prefill(*, out, q, k, v, scale):
        enforce_contract("attention_prefill", out=out, q=q, k=k, v=v)
        mask = bottom_right_causal(q.shape[0], k.shape[0], q.device)
        out.copy_(attend(fresh(q), fresh(k), fresh(v), mask, scale))

    def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):
        enforce_contract("attention_decode", out=out, q=q, k_cache=k_cache, v_cache=v_cache, seq_lens=seq_lens)
        for b, length in enumerate(seq_lens.tolist()):
            mask = bottom_right_causal(q.shape[1], length, q.device)
            out[b] = attend(fresh(q[b]), fresh(k_cache[b, :length]), fresh(v_cache[b, :length]),
                            mask, scale)

    def attention_decode_paged(*, out, q, k_cache, v_cache, block_table, seq_lens, scale):
        enforce_contract("attention_decode_paged", out=out, q=q, k_cache=k_cache, v_cache=v_cache,
                         block_table=block_table, seq_lens=seq_lens)
        for b, length in enumerate(seq_lens.tolist()):
            keys, values = gather_pages(k_cache, block_table[b], length), gather_pages(v_cache, block_table[b], length)
            mask = bottom_right_causal(q.shape[1], length, q.device)
            out[b] = attend(fresh(q[b]), fresh(keys), fresh(values), mask, scale)

    def moe_router(*, weights, ids, x, gate_weight, top_k, norm_topk_prob):
        enforce_contract("moe_router", weights=weights, ids=ids, x=x, gate_weight=gate_weight)
        chosen_weights, chosen = route(fresh(x), fresh(gate_weight), top_k, norm_topk_prob)
        weights.copy_(chosen_weights)
        ids.copy_(chosen)

    functions = {"rms_norm": rms_norm, "add_rms_norm": add_rms_norm, "rope": rope, "swiglu": swiglu,
                 "softmax": softmax, "causal_softmax": causal_softmax, "linear": linear,
                 "attention_prefill": attention_prefill, "attention_decode": attention_decode,
                 "attention_decode_paged": attention_decode_paged, "moe_router": moe_router}
    kernels = {op: Kernel(op, f, {"kind": "torch.compile", "function": f"compiled Hugging Face {op}"})
               for op, f in functions.items()}
    return Backend(name="compiled", device=device, kernels=kernels,
                   description=f"torch.compile (Inductor) of the Hugging Face formulas, PyTorch {torch.__version__}, "
                               f"{'size-oblivious ' if size_oblivious else ''}dynamic shapes")


def backend(device: Device) -> Backend:
    """This panel member as a backend module: `--backend operators.panel.compiled` (its replay lines load it)."""
    return compiled_backend(device)
