"""What a PyTorch user runs for each operator: name -> zero-argument callable on a workload's tensors,
returning the spec's outputs by name; the speed the native kernels must match.

'eager' is the operator's function in reference/ (Hugging Face's code) in the working dtype; the other
names are production kernels timed beside it (F.rms_norm, SDPA, F.linear, a vectorised sampler).
Tables, gathers and cache copies a model makes once per forward are made here, outside the timed call."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

import reference.add_rms_norm
import reference.attention
import reference.embedding
import reference.kv_cache
import reference.linear
import reference.moe
import reference.rms_norm
import reference.rope
import reference.sampling
import reference.softmax
import reference.swiglu
from operators.bench.workload import Tensors

Baseline = Callable[[], dict[str, torch.Tensor]]
Attributes = Mapping[str, Any]


def fused_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype) * weight


def sdpa_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                         is_causal=True, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1)


def sdpa_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float) -> torch.Tensor:
    """Every request's cache full to its length L (the benchmark's decode shape): no mask needed."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k_cache.transpose(1, 2), v_cache.transpose(1, 2),
                                          scale=scale, enable_gqa=True).transpose(1, 2)


def vectorised_sample(logits, random, temperature, top_k, top_p):
    """top-k by torch.topk, then the nucleus (top_p of the kept mass) and the walk by searchsorted."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    top, ids = torch.topk(probs, top_k, dim=-1)
    cumulative = top.cumsum(-1)
    ends = torch.searchsorted(cumulative, top_p * cumulative[:, -1:]).clamp_max(top_k - 1)
    totals = cumulative.gather(1, ends)
    picks = torch.minimum(torch.searchsorted(cumulative, random[:, None] * totals, right=True), ends)
    return ids.gather(1, picks)[:, 0]


def embedding(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.embedding.embedding(t["ids"], t["weight"])}}


def rms_norm(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.rms_norm.rms_norm(t["x"], t["weight"], a["eps"])},
            "F.rms_norm": lambda: {"out": fused_rms_norm(t["x"], t["weight"], a["eps"])}}


def add_rms_norm(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    def eager():
        total, normed = reference.add_rms_norm.add_rms_norm(t["x"], t["residual"], t["weight"], a["eps"])
        return {"sum": total, "out": normed}

    return {"eager": eager}


def linear(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"F.linear": lambda: {"out": reference.linear.linear(t["x"], t["weight"], t.get("bias"))}}


def rope(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    x, layout = t["x"], a["layout"]
    cos, sin = reference.rope.cos_sin(t["positions"], x.shape[-1], a["theta"], x.dtype, torch.float32, layout)
    return {"eager": lambda: {"out": reference.rope.apply_rotary(x, cos, sin, layout)}}


def swiglu(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.swiglu.swiglu(t["gate"], t["up"])}}


def softmax(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.softmax.softmax(t["x"])}}


def causal_softmax(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.softmax.causal_softmax(t["x"])}}


def attention_prefill(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    q, k, v, scale = t["q"], t["k"], t["v"], a["scale"]
    return {"eager": lambda: {"out": reference.attention.attention_prefill(q, k, v, scale)},
            "sdpa": lambda: {"out": sdpa_prefill(q, k, v, scale)}}


def attention_decode(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"sdpa": lambda: {"out": sdpa_decode(t["q"], t["k_cache"], t["v_cache"], a["scale"])}}


def attention_decode_paged(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    """SDPA on the caches gathered to [B, blocks * block_size, Hkv, D]."""
    table = t["block_table"].long()
    k_cache, v_cache = t["k_cache"][table].flatten(1, 2), t["v_cache"][table].flatten(1, 2)
    return {"sdpa": lambda: {"out": sdpa_decode(t["q"], k_cache, v_cache, a["scale"])}}


def kv_cache_write(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    k_cache, v_cache = t["k_cache"].clone(), t["v_cache"].clone()
    write = reference.kv_cache.write
    return {"eager": lambda: {"k_cache": write(k_cache, t["k"], t["positions"]),
                              "v_cache": write(v_cache, t["v"], t["positions"])}}


def kv_cache_write_paged(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    k_cache, v_cache = t["k_cache"].clone(), t["v_cache"].clone()
    write = reference.kv_cache.write_paged
    return {"eager": lambda: {"k_cache": write(k_cache, t["k"], t["slots"]),
                              "v_cache": write(v_cache, t["v"], t["slots"])}}


def argmax(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.sampling.argmax(t["logits"])}}


def random_sample(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    settings = a["temperature"], a["top_k"], a["top_p"]
    return {"eager": lambda: {"out": reference.sampling.random_sample(t["logits"], t["random"], *settings,
                                                                      upcast=torch.float32)},
            "topk+searchsorted": lambda: {"out": vectorised_sample(t["logits"], t["random"], *settings)}}


def moe_router(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    def eager():
        weights, ids = reference.moe.moe_router(t["x"], t["gate_weight"], a["top_k"], a["norm_topk_prob"])
        return {"weights": weights, "ids": ids}

    return {"eager": eager}


def moe_experts(t: Tensors, a: Attributes) -> dict[str, Baseline]:
    return {"eager": lambda: {"out": reference.moe.moe_experts(t["x"], t["weights"], t["ids"], t["gate_up"],
                                                               t["down"])}}
