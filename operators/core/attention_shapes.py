"""Shape choices shared by the attention and KV-cache specs."""

from __future__ import annotations

from hypothesis import strategies as st

from operators.core.device import Device

# (query heads, kv heads) of Qwen3: ratios 2 (0.6B/1.7B), 4 (4B/8B), 5 (14B), 8 (32B, 30B-A3B),
# 16 (235B-A22B), and ratio 1 (multi-head attention).
GQA_HEADS = ((16, 8), (32, 8), (40, 8), (64, 8), (32, 4), (64, 4), (8, 8))
HEAD_DIMS = (128, 64)
# Lengths at block boundaries: 127/128/129 and 1024/1025, and 1031 (prime).
PREFILL_LENGTHS = (1, 2, 17, 127, 128, 129, 1024, 1025, 1031)
# Multiply-accumulates of one CPU attention case (QK and PV): keeps CI fast; the GPU runs real sizes.
CPU_ATTENTION_MACS = 3e8


def scale_heads(heads: int, kv_heads: int, work_per_head: float, device: Device) -> tuple[int, int]:
    """Fewer kv heads on the CPU, the GQA ratio kept, until the case fits the CPU budget."""
    ratio = heads // kv_heads
    while device is Device.CPU and kv_heads > 1 and 2 * work_per_head * ratio * kv_heads > CPU_ATTENTION_MACS:
        kv_heads = max(1, kv_heads // 2)
    return ratio * kv_heads, kv_heads


def fits(tokens_q: int, tokens_k: int, heads: int, head_dim: int, device: Device) -> bool:
    return device is not Device.CPU or 2 * tokens_q * tokens_k * heads * head_dim <= CPU_ATTENTION_MACS


def gqa_heads() -> st.SearchStrategy[tuple[int, int]]:
    return st.sampled_from(GQA_HEADS)


def head_dims() -> st.SearchStrategy[int]:
    return st.sampled_from(HEAD_DIMS)


def cache_lengths(device: Device) -> st.SearchStrategy[int]:
    lengths = (16, 64, 130, 257, 1030)  # 257: one past a split-KV chunk of 256
    return st.sampled_from(lengths if device is Device.CPU else lengths + (4096, 8192))


def batch_sizes(device: Device) -> st.SearchStrategy[int]:
    return st.sampled_from((1, 2, 3, 5) if device is Device.CPU else (1, 3, 8, 32))
