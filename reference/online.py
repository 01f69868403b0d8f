"""Other correct formulations of the long reductions, as production kernels compute them.

Hugging Face's eager code is one correct way to compute a softmax or an attention in float32;
flash-style kernels (FlashAttention, SDPA's fused backends, Triton/Inductor code) use another:
key blocks with a running maximum and sum, exponentials as exp2 of a score pre-multiplied by
log2(e), probabilities rounded to the working dtype before the P@V product. Their rounding errors
differ from eager's, by several times at thousands of keys; the error budget takes the worst of
these correct computations as its same-dtype baseline."""

from __future__ import annotations

import math

import torch

from reference.attention import repeat_kv

LOG2E = math.log2(math.e)


def _finite_or_zero(maximum: torch.Tensor) -> torch.Tensor:
    """A running maximum of -inf (nothing visible yet) shifts by 0, so exp2(-inf - 0) = 0, not NaN."""
    return torch.where(torch.isinf(maximum), torch.zeros_like(maximum), maximum)


def online_softmax(x: torch.Tensor, block: int = 256) -> torch.Tensor:
    """softmax(x, -1) in float32 over blocks of `block` columns, exp2((x - max) * log2e) per block,
    the running sum rescaled when the maximum grows; cast to x's dtype. A row of -inf gives NaN."""
    scores = x.to(torch.float32) * LOG2E
    maximum = torch.full(scores.shape[:-1], -math.inf, dtype=torch.float32, device=x.device)
    total = torch.zeros_like(maximum)
    for start in range(0, scores.shape[-1], block):
        chunk = scores[..., start:start + block]
        grown = torch.maximum(maximum, chunk.amax(-1))
        shift = _finite_or_zero(grown)
        total = total * torch.exp2(maximum - shift) + torch.exp2(chunk - shift[..., None]).sum(-1)
        maximum = grown
    # A fully masked row keeps the maximum -inf: -inf - -inf is NaN there, as torch.softmax gives.
    return (torch.exp2(scores - maximum[..., None]) / total[..., None]).to(x.dtype)


def online_causal_softmax(x: torch.Tensor, visible: torch.Tensor, block: int = 256) -> torch.Tensor:
    """online_softmax under a boolean mask (True = visible); masked entries 0."""
    masked = x.to(torch.float32).masked_fill(~visible, -math.inf)
    return online_softmax(masked, block).masked_fill(~visible, 0.0).to(x.dtype)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float,
                    upcast: torch.dtype = torch.float32, block: int = 64) -> torch.Tensor:
    """Attention as flash kernels compute it: q [Tq, Hq, D], k/v [Tk, Hkv, D], mask [Tq, Tk].

    Scores accumulate in float32 (tensor cores on half inputs), are scaled by scale * log2(e) in one
    float32 multiply, and go through exp2 against a running maximum per block of `block` keys; the
    probabilities are rounded to the working dtype for the P@V product, accumulated in float32,
    and divided by the running sum at the end. `upcast` is accepted for the reference signature."""
    del upcast
    groups = q.shape[-2] // k.shape[-2]
    queries = q.to(torch.float32).transpose(0, 1)  # [H, Tq, D]
    keys = repeat_kv(k, groups).to(torch.float32).transpose(0, 1)
    values = repeat_kv(v, groups).transpose(0, 1)
    scale_log2 = torch.tensor(scale * LOG2E, dtype=torch.float32)
    heads, length = queries.shape[0], queries.shape[1]
    maximum = torch.full((heads, length), -math.inf, dtype=torch.float32, device=q.device)
    total = torch.zeros_like(maximum)
    accumulator = torch.zeros((heads, length, v.shape[-1]), dtype=torch.float32, device=q.device)
    for start in range(0, keys.shape[1], block):
        stop = min(start + block, keys.shape[1])
        scores = torch.matmul(queries, keys[:, start:stop].transpose(1, 2)) * scale_log2.to(q.device)
        scores = scores.masked_fill(~mask[:, start:stop], -math.inf)
        grown = torch.maximum(maximum, scores.amax(-1))
        shift = _finite_or_zero(grown)
        rescale = torch.exp2(maximum - shift)
        probabilities = torch.exp2(scores - shift[..., None])
        total = total * rescale + probabilities.sum(-1)
        product = torch.matmul(probabilities.to(v.dtype).to(torch.float32), values[:, start:stop].to(torch.float32))
        accumulator = accumulator * rescale[..., None] + product
        maximum = grown
    return (accumulator / total[..., None]).to(q.dtype).transpose(0, 1)


def split_k_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   chunk: int = 512) -> torch.Tensor:
    """x W^T (+ b) as a split-K GEMM: float32 partial products over chunks of the input features,
    added to one float32 accumulator per output in chunk order, rounded once to x's dtype. Chunk 1
    is the textbook GEMM (one fused multiply-add per input feature, in order): the longest rounding
    chain a correct float32 linear has, about 2.5x a blocked BLAS GEMM's error at K = 4096-17408."""
    features = x.shape[-1]
    rows = x.reshape(-1, features).to(torch.float32)
    columns = weight.to(torch.float32).T
    result = torch.zeros((rows.shape[0], weight.shape[0]), dtype=torch.float32, device=x.device)
    for start in range(0, features, chunk):
        result.addmm_(rows[:, start:start + chunk], columns[start:start + chunk])
    if bias is not None:
        result += bias.to(torch.float32)
    return result.reshape(*x.shape[:-1], weight.shape[0]).to(x.dtype)


def sequential_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3RMSNorm with the mean of squares summed by one float32 accumulator in index order (a
    scalar loop: the longest rounding chain a correct kernel has; Inductor's CPU code and simple C
    kernels sum this way), then Hugging Face's casting order."""
    hidden = x.to(torch.float32)
    total = torch.zeros(hidden.shape[:-1], dtype=torch.float32, device=x.device)
    squares = hidden * hidden
    for column in range(hidden.shape[-1]):
        total += squares[..., column]
    normed = hidden * torch.rsqrt(total[..., None] / hidden.shape[-1] + eps)
    return weight * normed.to(x.dtype)


def chained_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float,
                      upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """Hugging Face's eager attention with each score accumulated over head_dim in one float32
    chain (a CUDA-core kernel's dot product: memory-efficient SDPA in float32, simple decode
    kernels), rounded to q's dtype as eager's matmul output is; softmax and P@V as eager."""
    groups = q.shape[-2] // k.shape[-2]
    queries = q.to(torch.float32).transpose(0, 1)  # [H, Tq, D]
    keys = repeat_kv(k, groups).to(torch.float32).transpose(0, 1)  # [H, Tk, D]
    scores = torch.zeros((queries.shape[0], queries.shape[1], keys.shape[1]), dtype=torch.float32, device=q.device)
    for d in range(q.shape[-1]):
        scores.addcmul_(queries[:, :, d, None], keys[:, None, :, d])
    scores = (scores.to(q.dtype) * scale).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=upcast).to(q.dtype)
    return torch.matmul(weights, repeat_kv(v, groups).transpose(0, 1)).transpose(0, 1)


def scaled_in_float32_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float,
                                upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """Hugging Face's eager attention as Inductor fuses it: q k^T rounded to q's dtype by the matmul,
    the scale applied in float32 inside the fused softmax (one rounding of the score instead of
    eager's two). In half precision the scores' roundings dominate the error, and either placement
    can be the larger one: over 10^4 outputs their largest errors differ by 2-3x."""
    groups = q.shape[-2] // k.shape[-2]
    keys, values = repeat_kv(k, groups).transpose(0, 1), repeat_kv(v, groups).transpose(0, 1)
    scores = torch.matmul(q.transpose(0, 1), keys.transpose(1, 2)).to(torch.float32) * scale
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1, dtype=upcast).to(q.dtype)
    return torch.matmul(weights, values).transpose(0, 1)
