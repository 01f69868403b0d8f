"""The control backend: PyTorch's own production operators, not the reference functions.

It must pass every case; a failure here is a false alarm of the verdict, not a kernel bug."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from operators.backends.backend import Backend
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelDTypeError, KernelShapeError, KernelValueError
from operators.core.registry import OPERATOR_NAMES, get_spec


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


def enforce_range(operator: str, name: str, values: torch.Tensor, low: float, high: float) -> None:
    """Reject values outside [low, high) (NaN included), as a native kernel must."""
    inside = (values >= low) & (values < high)
    if not bool(inside.all()):
        raise KernelValueError(operator, f"tensor '{name}' holds {values[~inside][0].item()}, outside [{low}, {high})")


def enforce_distinct(operator: str, name: str, rows: torch.Tensor) -> None:
    """Reject a value repeated within a row (two writes to one cache slot)."""
    ordered = rows.sort(dim=-1).values
    if bool((ordered[..., 1:] == ordered[..., :-1]).any()):
        raise KernelValueError(operator, f"tensor '{name}' holds a value twice within a row")


def embedding(*, out, ids, weight):
    enforce_range("embedding", "ids", ids, 0, weight.shape[0])
    out.copy_(F.embedding(ids, weight))


def rms_norm(*, out, x, weight, eps):
    normed = F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    out.copy_(normed * weight)


def add_rms_norm(*, out, sum, x, residual, weight, eps):
    torch.add(x, residual, out=sum)
    # Qwen3RMSNorm's own formula: PyTorch's fused CUDA F.rms_norm turns a whole row holding -inf
    # into NaN, where transformers (and the reference) give 0 for the row's finite elements.
    hidden = sum.float()
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
    out.copy_(hidden.to(x.dtype) * weight)


def linear(*, out, x, weight, bias=None):
    if x.device.type == "cpu" and x.dtype is not torch.float32 and not x.is_contiguous():
        # PyTorch 2.13's CPU half-precision GEMM reads the padding between the rows of a row-strided
        # x (NaN there gives NaN outputs; found by the verdict panel): the control copies such an x.
        x = x.contiguous()
    out.copy_(F.linear(x, weight, bias))


def rope(*, out, x, positions, theta, layout):
    """Rotation as a complex product, pairing elements per layout (a different formulation)."""
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
    out.copy_(F.silu(gate) * up)


def softmax(*, out, x):
    out.copy_(F.softmax(x, dim=-1, dtype=torch.float32))


def bottom_right_causal(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(diagonal=keys - queries)


def causal_softmax(*, out, x):
    visible = bottom_right_causal(x.shape[-2], x.shape[-1], x.device)
    out.copy_(F.softmax(x.float().masked_fill(~visible, float("-inf")), dim=-1).masked_fill(~visible, 0.0))


SDPA_ALIGNMENT = 16  # bytes


def sdpa_ready(t: torch.Tensor) -> torch.Tensor:
    """PyTorch's fused CUDA SDPA kernels misbehave on views that are not 16-byte aligned (seen with
    torch 2.11 + CUDA 13: 'misaligned address' for an offset pointer, NaN outputs or 'no kernel found'
    for padded row strides), which the OFFSET and PADDED layouts make on purpose; such a view is
    copied to fresh memory first, as a user's own tensors would be."""
    size = t.element_size()
    aligned = t.data_ptr() % SDPA_ALIGNMENT == 0 and t.stride(-1) == 1 and all(
        (stride * size) % SDPA_ALIGNMENT == 0 for stride in t.stride()[:-1])
    return t if aligned else t.contiguous() if not t.is_contiguous() else t.clone()


def sdpa(q, k, v, mask, scale):
    """q [Tq, Hq, D], k/v [Tk, Hkv, D] through F.scaled_dot_product_attention (GQA enabled)."""
    heads_first = [sdpa_ready(t).transpose(0, 1)[None] for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*heads_first, attn_mask=mask, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1)


def check_gqa(operator, q, k):
    if q.shape[-2] % k.shape[-2]:
        raise KernelShapeError(operator, f"{q.shape[-2]} query heads are not a multiple of {k.shape[-2]} kv heads")


def attention_prefill(*, out, q, k, v, scale):
    check_gqa("attention_prefill", q, k)
    out.copy_(sdpa(q, k, v, bottom_right_causal(q.shape[0], k.shape[0], q.device), scale))


def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):
    check_gqa("attention_decode", q, k_cache)
    enforce_range("attention_decode", "seq_lens", seq_lens, q.shape[1], k_cache.shape[1] + 1)
    for b, length in enumerate(seq_lens.tolist()):
        mask = bottom_right_causal(q.shape[1], length, q.device)
        out[b] = sdpa(q[b], k_cache[b, :length], v_cache[b, :length], mask, scale)


def attention_decode_paged(*, out, q, k_cache, v_cache, block_table, seq_lens, scale):
    check_gqa("attention_decode_paged", q, k_cache)
    block_size = k_cache.shape[1]
    enforce_range("attention_decode_paged", "seq_lens", seq_lens, q.shape[1], block_table.shape[1] * block_size + 1)
    used = torch.arange(block_table.shape[1], device=q.device) * block_size < seq_lens[:, None].to(q.device)
    enforce_range("attention_decode_paged", "block_table", block_table[used], 0, k_cache.shape[0])
    for b, length in enumerate(seq_lens.tolist()):
        positions = torch.arange(length, device=q.device)
        blocks = block_table[b, positions // block_size].long()
        keys, values = k_cache[blocks, positions % block_size], v_cache[blocks, positions % block_size]
        out[b] = sdpa(q[b], keys, values, bottom_right_causal(q.shape[1], length, q.device), scale)


def kv_cache_write(*, k_cache, v_cache, k, v, positions):
    enforce_range("kv_cache_write", "positions", positions, 0, k_cache.shape[1])
    enforce_distinct("kv_cache_write", "positions", positions)
    rows = torch.arange(k.shape[0], device=k.device)[:, None].expand_as(positions)
    k_cache.index_put_((rows, positions.long()), k)
    v_cache.index_put_((rows, positions.long()), v)


def kv_cache_write_paged(*, k_cache, v_cache, k, v, slots):
    block_size = k_cache.shape[1]
    enforce_range("kv_cache_write_paged", "slots", slots, 0, k_cache.shape[0] * block_size)
    enforce_distinct("kv_cache_write_paged", "slots", slots)
    index = (slots.long() // block_size, slots.long() % block_size)
    k_cache.index_put_(index, k)
    v_cache.index_put_(index, v)


def argmax(*, out, logits):
    out.copy_(torch.argmax(logits, dim=-1))


def random_sample(*, out, logits, random, temperature, top_k, top_p):
    """Sorted walk with searchsorted: a different formulation from the reference's loop."""
    enforce_range("random_sample", "random", random, 0, 1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    vocab = probs.shape[-1]
    kept = vocab if top_k <= 0 else min(top_k, vocab)
    cumulative = torch.cumsum(sorted_probs[:, :kept], dim=-1)
    ends = torch.searchsorted(cumulative, top_p * cumulative[:, -1:], right=False).clamp_max(kept - 1)
    totals = torch.gather(cumulative, 1, ends)
    picks = torch.searchsorted(cumulative, random[:, None].float() * totals, right=True)
    picks = torch.minimum(picks, ends)
    out.copy_(torch.gather(order, 1, picks)[:, 0])


def moe_router(*, weights, ids, x, gate_weight, top_k, norm_topk_prob):
    probs = F.softmax(F.linear(x, gate_weight), dim=-1, dtype=torch.float32)
    top, chosen = torch.topk(probs, top_k, dim=-1)
    if norm_topk_prob:
        top = top / top.sum(dim=-1, keepdim=True)
    weights.copy_(top)
    ids.copy_(chosen)


def moe_experts(*, out, x, weights, ids, gate_up, down):
    """Token by token in float32 (the reference goes expert by expert in the working dtype)."""
    enforce_range("moe_experts", "ids", ids, 0, gate_up.shape[0])
    width = down.shape[2]
    result = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for token in range(x.shape[0]):
        for slot, expert in enumerate(ids[token].tolist()):
            gate_and_up = F.linear(x[token].float(), gate_up[expert].float())
            hidden = F.silu(gate_and_up[:width]) * gate_and_up[width:]
            result[token] += weights[token, slot].float() * F.linear(hidden, down[expert].float())
    out.copy_(result)


def guarded(operator: str, function: Callable[..., None]) -> Callable[..., None]:
    """`function` behind the spec's dtype contract, checked first, as a native kernel's host checks are."""
    tensors = tuple(get_spec(operator).dtype_options)

    def kernel(**arguments) -> None:
        enforce_contract(operator, **{name: arguments.get(name) for name in tensors})
        function(**arguments)

    return kernel


def backend(device: Device) -> Backend:
    """Every operator of the registry, by this module's function of the same name."""
    functions = {name: globals()[name] for name in OPERATOR_NAMES}
    kernels = {op: Kernel(op, guarded(op, f), {"kind": "torch", "function": f"torch control {f.__name__}"})
               for op, f in functions.items()}
    return Backend(name="torch", device=device, kernels=kernels,
                   description=f"PyTorch {torch.__version__} production operators (control)")
