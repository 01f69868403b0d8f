"""What a PyTorch user writes for each operator (Hugging Face's Qwen3 code, SDPA, F.linear), as
out-of-place functions of the case's input tensors: the speed the native kernels must match."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F

Baseline = Callable[..., object]


def hf_rms_norm(x, weight, eps):
    hidden = x.float()
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
    return weight * hidden.to(x.dtype)


def add_rms_norm(x, residual, weight, eps):
    total = x + residual
    return total, hf_rms_norm(total, weight, eps)


def rope_tables(positions, theta, head_dim, dtype):
    """cos/sin as Qwen3RotaryEmbedding builds them once per forward (outside the timed call)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().to(dtype)[:, None, :], emb.sin().to(dtype)[:, None, :]


def rope_neox(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def causal_softmax(x):
    q, k = x.shape[-2], x.shape[-1]
    mask = torch.ones(q, k, dtype=torch.bool, device=x.device).tril(k - q)
    return torch.softmax(x.masked_fill(~mask, float("-inf")), dim=-1, dtype=torch.float32).to(x.dtype)


def eager_prefill(q, k, v, scale):
    """Qwen3 eager attention: repeat_kv, matmul, causal mask, float32 softmax, matmul."""
    groups = q.shape[1] // k.shape[1]
    qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1).repeat_interleave(groups, 0), v.transpose(0, 1).repeat_interleave(groups, 0)
    scores = torch.matmul(qh, kh.transpose(1, 2)) * scale
    probs = causal_softmax(scores)
    return torch.matmul(probs, vh).transpose(0, 1)


def sdpa_prefill(q, k, v, scale):
    out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                         is_causal=True, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1)


def sdpa_decode(q, k_cache, v_cache, scale):
    """Every request's cache full to its length L (the benchmark's decode shape): no mask needed."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k_cache.transpose(1, 2), v_cache.transpose(1, 2),
                                          scale=scale, enable_gqa=True).transpose(1, 2)


def kv_cache_write(k_cache, v_cache, k, v, positions):
    rows = torch.arange(k.shape[0], device=k.device)[:, None]
    k_cache[rows, positions] = k
    v_cache[rows, positions] = v


def kv_cache_write_paged(k_cache, v_cache, k, v, slots):
    k_cache.view(-1, *k_cache.shape[2:])[slots] = k
    v_cache.view(-1, *v_cache.shape[2:])[slots] = v


def random_sample(logits, random, temperature, top_k, top_p):
    """top-k by torch.topk, then the nucleus (top_p of the kept mass) and the walk by searchsorted."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    top, ids = torch.topk(probs, top_k, dim=-1)
    cumulative = top.cumsum(-1)
    ends = torch.searchsorted(cumulative, top_p * cumulative[:, -1:]).clamp_max(top_k - 1)
    totals = cumulative.gather(1, ends)
    picks = torch.minimum(torch.searchsorted(cumulative, random[:, None] * totals, right=True), ends)
    return ids.gather(1, picks)[:, 0]


def moe_router(x, gate_weight, top_k, norm_topk_prob):
    probs = torch.softmax(F.linear(x, gate_weight), dim=-1, dtype=torch.float32)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    if norm_topk_prob:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights.to(x.dtype), ids


def moe_experts(x, weights, ids, gate_up, down):
    """Qwen3MoeExperts: a loop over the experts that received tokens."""
    out = torch.zeros_like(x)
    hit = torch.nn.functional.one_hot(ids.long(), gate_up.shape[0]).permute(2, 1, 0)
    for expert in hit.sum((1, 2)).nonzero()[:, 0].tolist():
        slot, token = torch.where(hit[expert])
        gate, up = F.linear(x[token], gate_up[expert]).chunk(2, dim=-1)
        hidden = F.linear(F.silu(gate) * up, down[expert]) * weights[token, slot, None]
        out.index_add_(0, token, hidden.to(x.dtype))
    return out


def baselines(operator: str, inputs: Mapping[str, torch.Tensor], attributes: Mapping) -> dict[str, Baseline]:
    """name -> zero-argument callable for one workload; names ending in '+compile' are compiled by the caller."""
    a, t = attributes, inputs
    if operator == "embedding":
        return {"eager": lambda: F.embedding(t["ids"], t["weight"])}
    if operator == "rms_norm":
        return {"eager": lambda: hf_rms_norm(t["x"], t["weight"], a["eps"]),
                "F.rms_norm": lambda: F.rms_norm(t["x"].float(), (t["x"].shape[-1],), eps=a["eps"]).to(t["x"].dtype) * t["weight"]}
    if operator == "add_rms_norm":
        return {"eager": lambda: add_rms_norm(t["x"], t["residual"], t["weight"], a["eps"])}
    if operator == "linear":
        return {"F.linear": lambda: F.linear(t["x"], t["weight"], t.get("bias"))}
    if operator == "rope":
        cos, sin = rope_tables(t["positions"], a["theta"], t["x"].shape[-1], t["x"].dtype)
        return {"eager": lambda: rope_neox(t["x"], cos, sin)}
    if operator == "swiglu":
        return {"eager": lambda: F.silu(t["gate"]) * t["up"]}
    if operator == "softmax":
        return {"eager": lambda: torch.softmax(t["x"], dim=-1, dtype=torch.float32).to(t["x"].dtype)}
    if operator == "causal_softmax":
        return {"eager": lambda: causal_softmax(t["x"])}
    if operator == "attention_prefill":
        return {"eager": lambda: eager_prefill(t["q"], t["k"], t["v"], a["scale"]),
                "sdpa": lambda: sdpa_prefill(t["q"], t["k"], t["v"], a["scale"])}
    if operator in ("attention_decode", "attention_decode_paged"):
        k_cache, v_cache = contiguous_caches(operator, t)
        return {"sdpa": lambda: sdpa_decode(t["q"], k_cache, v_cache, a["scale"])}
    if operator == "kv_cache_write":
        caches = t["k_cache"].clone(), t["v_cache"].clone()
        return {"eager": lambda: kv_cache_write(*caches, t["k"], t["v"], t["positions"])}
    if operator == "kv_cache_write_paged":
        caches = t["k_cache"].clone(), t["v_cache"].clone()
        return {"eager": lambda: kv_cache_write_paged(*caches, t["k"], t["v"], t["slots"])}
    if operator == "argmax":
        return {"eager": lambda: torch.argmax(t["logits"], dim=-1)}
    if operator == "random_sample":
        return {"eager": lambda: random_sample(t["logits"], t["random"], a["temperature"], a["top_k"], a["top_p"])}
    if operator == "moe_router":
        return {"eager": lambda: moe_router(t["x"], t["gate_weight"], a["top_k"], a["norm_topk_prob"])}
    if operator == "moe_experts":
        return {"eager": lambda: moe_experts(t["x"], t["weights"], t["ids"], t["gate_up"], t["down"])}
    raise ValueError(f"no PyTorch baseline for operator '{operator}'")


def contiguous_caches(operator: str, t: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The caches as [B, L, Hkv, D]; a paged cache is gathered once, outside the timed call."""
    if operator == "attention_decode":
        return t["k_cache"], t["v_cache"]
    table = t["block_table"].long()
    gather = lambda cache: cache[table].flatten(1, 2)  # noqa: E731  [B, blocks * block_size, Hkv, D]
    return gather(t["k_cache"]), gather(t["v_cache"])
