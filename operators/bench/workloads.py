"""The benchmark's workloads: every operator on Qwen3-8B shapes (MoE on Qwen3-30B-A3B), bf16.

Bytes count each input read once and each output written once, except where an operator touches
only part of a tensor (embedding rows, cache slots, attended cache positions, routed experts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from operators import (add_rms_norm, argmax, attention_decode, attention_decode_paged, attention_prefill, embedding,
                       kv_cache_write, kv_cache_write_paged, linear, moe_experts, moe_router, random_sample, rms_norm,
                       rope, softmax, swiglu)
from operators.case import Case
from operators.dtypes import DType
from operators.registry import get_spec
from operators.strategies import allowed_combos

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE, VOCAB = 4096, 32, 8, 128, 12288, 151936  # Qwen3-8B
MOE_HIDDEN, MOE_EXPERTS, MOE_TOP_K, MOE_WIDTH = 2048, 128, 8, 768  # Qwen3-30B-A3B
TOKENS = (1, 32, 4096)
DECODE_PAST = 4096
BLOCK_SIZE = 16
COMPILED = ("rms_norm", "add_rms_norm", "rope", "swiglu", "softmax", "causal_softmax")  # torch.compile candidates


@dataclass(frozen=True)
class Workload:
    name: str
    case: Case
    kind: str  # "memory" (judged by GB/s vs copy bandwidth) or "compute" (TFLOP/s vs matmul rate)
    flops: float = 0.0
    large: bool = False  # the shapes the speed targets speak of
    # Replaces drawn inputs before timing (e.g. every request's cache full to its length).
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = field(default=None, compare=False)
    bytes_of: Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], float] | None = field(
        default=None, compare=False)

    @property
    def operator(self) -> str:
        return self.case.operator


def bf16_dtypes(operator: str) -> dict[str, DType]:
    """The allowed combination with the most bf16 tensors and int64 indices."""
    combos = allowed_combos(get_spec(operator), DType.BF16)
    return max(combos, key=lambda c: (sum(d is DType.BF16 for d in c.values()), sum(d is DType.I64 for d in c.values())))


def full_bytes(inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> float:
    return float(sum(t.numel() * t.element_size() for t in (*inputs.values(), *outputs.values())))


def embedding_bytes(inputs, outputs):
    return float(2 * outputs["out"].numel() * outputs["out"].element_size() + inputs["ids"].numel() * 8)


def cache_write_bytes(inputs, outputs):
    return float(2 * sum(inputs[n].numel() * inputs[n].element_size() for n in ("k", "v")))


def decode_bytes(inputs, outputs):
    """q and out, and the caches up to each request's length (all full in these workloads)."""
    cache = inputs["k_cache"]
    per_position = cache.shape[-2] * cache.shape[-1] * cache.element_size()
    attended = float(inputs["seq_lens"].sum()) * per_position * 2
    return attended + 2 * inputs["q"].numel() * inputs["q"].element_size()


def experts_bytes(inputs, outputs):
    used = torch.unique(inputs["ids"]).numel()
    per_expert = (inputs["gate_up"][0].numel() + inputs["down"][0].numel()) * inputs["gate_up"].element_size()
    activations = full_bytes({"x": inputs["x"], "weights": inputs["weights"], "ids": inputs["ids"]}, outputs)
    return used * per_expert + activations


def full_contiguous_decode(inputs):
    length = inputs["k_cache"].shape[1]
    return {**inputs, "k_cache": torch.randn_like(inputs["k_cache"]), "v_cache": torch.randn_like(inputs["v_cache"]),
            "seq_lens": torch.full_like(inputs["seq_lens"], length)}


def full_paged_decode(inputs):
    table, blocks = inputs["block_table"], inputs["k_cache"].shape[0]
    owners = torch.randperm(blocks, device=table.device)[: table.numel()].view(table.shape).to(table.dtype)
    length = table.shape[1] * inputs["k_cache"].shape[1]
    return {**inputs, "k_cache": torch.randn_like(inputs["k_cache"]), "v_cache": torch.randn_like(inputs["v_cache"]),
            "block_table": owners, "seq_lens": torch.full_like(inputs["seq_lens"], length)}


def workloads() -> list[Workload]:
    d = bf16_dtypes
    found: list[Workload] = []
    for t in TOKENS:
        big = t == TOKENS[-1]
        found += [
            Workload(f"embedding T={t}", embedding.make_case(d("embedding"), (t,), VOCAB, HIDDEN), "memory", large=big,
                     bytes_of=embedding_bytes),
            Workload(f"rms_norm T={t}x{HIDDEN}", rms_norm.make_case(d("rms_norm"), (t, HIDDEN)), "memory", large=big),
            Workload(f"rms_norm q/k T={t}x{HEADS}x{HEAD_DIM}", rms_norm.make_case(d("rms_norm"), (t, HEADS, HEAD_DIM)),
                     "memory", large=big),
            Workload(f"add_rms_norm T={t}x{HIDDEN}", add_rms_norm.make_case(d("add_rms_norm"), (t, HIDDEN)), "memory", large=big),
            Workload(f"linear T={t} {HIDDEN}->{INTERMEDIATE}",
                     linear.make_case(d("linear"), t, HIDDEN, INTERMEDIATE, False), "compute", large=big,
                     flops=2.0 * t * HIDDEN * INTERMEDIATE),
            Workload(f"rope T={t}x{HEADS}x{HEAD_DIM}", rope.make_case(d("rope"), t, HEADS, HEAD_DIM), "memory", large=big),
            Workload(f"swiglu T={t}x{INTERMEDIATE}", swiglu.make_case(d("swiglu"), (t, INTERMEDIATE)), "memory", large=big),
            Workload(f"softmax T={t}x{VOCAB}", softmax.make_case("softmax", d("softmax"), (t, VOCAB)), "memory", large=big),
            Workload(f"kv_cache_write B=1 S={t} L={DECODE_PAST + t}",
                     kv_cache_write.make_case(d("kv_cache_write"), 1, t, DECODE_PAST + t, KV_HEADS, HEAD_DIM), "memory", large=big,
                     bytes_of=cache_write_bytes),
            Workload(f"kv_cache_write_paged N={t}",
                     kv_cache_write_paged.make_case(d("kv_cache_write_paged"), t, (DECODE_PAST + t) // BLOCK_SIZE + 1,
                                                    BLOCK_SIZE, KV_HEADS, HEAD_DIM), "memory", large=big,
                     bytes_of=cache_write_bytes),
            Workload(f"moe_router T={t} {MOE_HIDDEN}->{MOE_EXPERTS}",
                     moe_router.make_case(d("moe_router"), t, MOE_EXPERTS, MOE_TOP_K, MOE_HIDDEN), "memory", large=big),
            Workload(f"moe_experts T={t} E={MOE_EXPERTS} k={MOE_TOP_K}",
                     moe_experts.make_case(d("moe_experts"), t, MOE_EXPERTS, MOE_TOP_K, MOE_HIDDEN, MOE_WIDTH), "compute", large=big,
                     flops=6.0 * t * MOE_TOP_K * MOE_HIDDEN * MOE_WIDTH, bytes_of=experts_bytes),
        ]
    for t in (1024, 4096):
        found += [
            Workload(f"causal_softmax {HEADS}x{t}x{t}",
                     softmax.make_case("causal_softmax", d("causal_softmax"), (HEADS, t, t)), "memory", large=t == 4096),
            Workload(f"attention_prefill T={t} {HEADS}/{KV_HEADS}",
                     attention_prefill.make_case(d("attention_prefill"), t, HEADS, KV_HEADS, HEAD_DIM), "compute",
                     flops=2.0 * t * t * HEADS * HEAD_DIM, large=t == 4096),  # causal: half of 4 T^2 H D
        ]
    length = DECODE_PAST + 1
    for batch in (1, 32):
        found += [
            Workload(f"attention_decode B={batch} P={DECODE_PAST}",
                     attention_decode.make_case(d("attention_decode"), batch, 1, length, HEADS, KV_HEADS, HEAD_DIM),
                     "memory", flops=4.0 * batch * length * HEADS * HEAD_DIM, prepare=full_contiguous_decode, large=batch == 32,
                     bytes_of=decode_bytes),
            Workload(f"attention_decode_paged B={batch} P={DECODE_PAST} block={BLOCK_SIZE}",
                     attention_decode_paged.make_case(d("attention_decode_paged"), batch, 1,
                                                      (length + BLOCK_SIZE - 1) // BLOCK_SIZE, BLOCK_SIZE, HEADS,
                                                      KV_HEADS, HEAD_DIM),
                     "memory", flops=4.0 * batch * length * HEADS * HEAD_DIM, prepare=full_paged_decode, large=batch == 32,
                     bytes_of=decode_bytes),
        ]
    found += [
        Workload(f"argmax B=32 V={VOCAB}", argmax.make_case(d("argmax"), 32, VOCAB), "memory"),
        Workload(f"random_sample B=32 V={VOCAB} top_k=50 top_p=0.9",
                 random_sample.make_case(d("random_sample"), 32, VOCAB, temperature=0.7, top_k=50, top_p=0.9), "memory"),
    ]
    return found
