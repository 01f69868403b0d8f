"""Each operator's workloads at one point of its sweep (operators/bench/shapes.py), with the bytes a
workload is judged by where the kernel reads or writes only part of a tensor (embedding rows, cache
slots, attended cache positions, routed experts)."""

from __future__ import annotations

import torch

from operators import (add_rms_norm as add_rms_norm_spec, argmax as argmax_spec,
                       attention_decode as attention_decode_spec, attention_decode_paged as attention_decode_paged_spec,
                       attention_prefill as attention_prefill_spec, embedding as embedding_spec,
                       kv_cache_write as kv_cache_write_spec, kv_cache_write_paged as kv_cache_write_paged_spec,
                       linear as linear_spec, moe_experts as moe_experts_spec, moe_router as moe_router_spec,
                       random_sample as random_sample_spec, rms_norm as rms_norm_spec, rope as rope_spec,
                       softmax as softmax_spec, swiglu as swiglu_spec)
from operators.bench.shapes import Shapes
from operators.bench.workload import Tensors, Workload, full_bytes


def embedding_bytes(inputs: Tensors, outputs: Tensors) -> float:
    return float(2 * outputs["out"].numel() * outputs["out"].element_size() + inputs["ids"].numel() * 8)


def cache_write_bytes(inputs: Tensors, outputs: Tensors) -> float:
    return float(2 * sum(inputs[n].numel() * inputs[n].element_size() for n in ("k", "v")))


def decode_bytes(inputs: Tensors, outputs: Tensors) -> float:
    """q and out, and the caches up to each request's length (all full in these workloads)."""
    cache = inputs["k_cache"]
    per_position = cache.shape[-2] * cache.shape[-1] * cache.element_size()
    attended = float(inputs["seq_lens"].sum()) * per_position * 2
    return attended + 2 * inputs["q"].numel() * inputs["q"].element_size()


def experts_bytes(inputs: Tensors, outputs: Tensors) -> float:
    used = torch.unique(inputs["ids"]).numel()
    per_expert = (inputs["gate_up"][0].numel() + inputs["down"][0].numel()) * inputs["gate_up"].element_size()
    activations = full_bytes({"x": inputs["x"], "weights": inputs["weights"], "ids": inputs["ids"]}, outputs)
    return used * per_expert + activations


def full_contiguous_decode(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    length = inputs["k_cache"].shape[1]
    return {**inputs, "k_cache": torch.randn_like(inputs["k_cache"]), "v_cache": torch.randn_like(inputs["v_cache"]),
            "seq_lens": torch.full_like(inputs["seq_lens"], length)}


def full_paged_decode(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    table, blocks = inputs["block_table"], inputs["k_cache"].shape[0]
    owners = torch.randperm(blocks, device=table.device)[: table.numel()].view(table.shape).to(table.dtype)
    length = table.shape[1] * inputs["k_cache"].shape[1]
    return {**inputs, "k_cache": torch.randn_like(inputs["k_cache"]), "v_cache": torch.randn_like(inputs["v_cache"]),
            "block_table": owners, "seq_lens": torch.full_like(inputs["seq_lens"], length)}


def embedding(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"embedding T={t}", embedding_spec.make_case(s.dtypes("embedding"), (t,), s.vocab, s.hidden),
                     large=large, bytes_of=embedding_bytes)]


def rms_norm(s: Shapes, t: int, large: bool) -> list[Workload]:
    d = s.dtypes("rms_norm")
    return [Workload(f"rms_norm T={t}x{s.hidden}", rms_norm_spec.make_case(d, (t, s.hidden)), large=large),
            Workload(f"rms_norm q/k T={t}x{s.heads}x{s.head_dim}",
                     rms_norm_spec.make_case(d, (t, s.heads, s.head_dim)), large=large)]


def add_rms_norm(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"add_rms_norm T={t}x{s.hidden}",
                     add_rms_norm_spec.make_case(s.dtypes("add_rms_norm"), (t, s.hidden)), large=large)]


def linear(s: Shapes, t: int, large: bool) -> list[Workload]:
    del large  # F.linear sets the bar at every token count
    return [Workload(f"linear T={t} {s.hidden}->{s.intermediate}",
                     linear_spec.make_case(s.dtypes("linear"), t, s.hidden, s.intermediate, False), large=True,
                     flops=2.0 * t * s.hidden * s.intermediate)]


def rope(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"rope T={t}x{s.heads}x{s.head_dim}",
                     rope_spec.make_case(s.dtypes("rope"), t, s.heads, s.head_dim), large=large)]


def swiglu(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"swiglu T={t}x{s.intermediate}", swiglu_spec.make_case(s.dtypes("swiglu"), (t, s.intermediate)),
                     large=large)]


def softmax(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"softmax T={t}x{s.vocab}", softmax_spec.make_case("softmax", s.dtypes("softmax"), (t, s.vocab)),
                     large=large)]


def causal_softmax(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"causal_softmax {s.heads}x{t}x{t}",
                     softmax_spec.make_case("causal_softmax", s.dtypes("causal_softmax"), (s.heads, t, t)),
                     large=large)]


def attention_prefill(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"attention_prefill T={t} {s.heads}/{s.kv_heads}",
                     attention_prefill_spec.make_case(s.dtypes("attention_prefill"), t, s.heads, s.kv_heads,
                                                      s.head_dim),
                     flops=2.0 * t * t * s.heads * s.head_dim, large=large)]  # causal: half of 4 T^2 H D


def attention_decode(s: Shapes, batch: int, large: bool) -> list[Workload]:
    length = s.decode_past + 1
    return [Workload(f"attention_decode B={batch} P={s.decode_past}",
                     attention_decode_spec.make_case(s.dtypes("attention_decode"), batch, 1, length, s.heads,
                                                     s.kv_heads, s.head_dim),
                     flops=4.0 * batch * length * s.heads * s.head_dim, prepare=full_contiguous_decode, large=large,
                     bytes_of=decode_bytes)]


def attention_decode_paged(s: Shapes, batch: int, large: bool) -> list[Workload]:
    length = s.decode_past + 1
    return [Workload(f"attention_decode_paged B={batch} P={s.decode_past} block={s.block_size}",
                     attention_decode_paged_spec.make_case(s.dtypes("attention_decode_paged"), batch, 1,
                                                           (length + s.block_size - 1) // s.block_size, s.block_size,
                                                           s.heads, s.kv_heads, s.head_dim),
                     flops=4.0 * batch * length * s.heads * s.head_dim, prepare=full_paged_decode, large=large,
                     bytes_of=decode_bytes)]


def kv_cache_write(s: Shapes, t: int, large: bool) -> list[Workload]:
    length = s.decode_past + t
    return [Workload(f"kv_cache_write B=1 S={t} L={length}",
                     kv_cache_write_spec.make_case(s.dtypes("kv_cache_write"), 1, t, length, s.kv_heads, s.head_dim),
                     large=large, bytes_of=cache_write_bytes)]


def kv_cache_write_paged(s: Shapes, t: int, large: bool) -> list[Workload]:
    blocks = (s.decode_past + t) // s.block_size + 1
    return [Workload(f"kv_cache_write_paged N={t}",
                     kv_cache_write_paged_spec.make_case(s.dtypes("kv_cache_write_paged"), t, blocks, s.block_size,
                                                         s.kv_heads, s.head_dim),
                     large=large, bytes_of=cache_write_bytes)]


def argmax(s: Shapes, batch: int, large: bool) -> list[Workload]:
    return [Workload(f"argmax B={batch} V={s.vocab}", argmax_spec.make_case(s.dtypes("argmax"), batch, s.vocab),
                     large=large)]


def random_sample(s: Shapes, batch: int, large: bool) -> list[Workload]:
    return [Workload(f"random_sample B={batch} V={s.vocab} top_k={s.sample_top_k} top_p=0.9",
                     random_sample_spec.make_case(s.dtypes("random_sample"), batch, s.vocab, temperature=0.7,
                                                  top_k=s.sample_top_k, top_p=0.9),
                     large=large)]


def moe_router(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"moe_router T={t} {s.moe_hidden}->{s.moe_experts}",
                     moe_router_spec.make_case(s.dtypes("moe_router"), t, s.moe_experts, s.moe_top_k, s.moe_hidden),
                     large=large)]


def moe_experts(s: Shapes, t: int, large: bool) -> list[Workload]:
    return [Workload(f"moe_experts T={t} E={s.moe_experts} k={s.moe_top_k}",
                     moe_experts_spec.make_case(s.dtypes("moe_experts"), t, s.moe_experts, s.moe_top_k, s.moe_hidden,
                                                s.moe_width),
                     flops=6.0 * t * s.moe_top_k * s.moe_hidden * s.moe_width, large=large, bytes_of=experts_bytes)]
