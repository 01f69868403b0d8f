"""The dimensions workloads are built at: Qwen3 in bf16 for the benchmark, a few elements in float32
for the CPU tests of the baselines; each operator's workloads are built at every point of one sweep."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from operators.core.dtypes import DType
from operators.core.registry import get_spec
from operators.core.strategies import allowed_combos


class Sweep(Enum):
    TOKENS = "tokens"  # hidden-state rows: one decode step, a small batch, a long prefill
    PREFILL = "prefill"  # sequence lengths of causal softmax and prefill attention
    DECODE = "decode_batches"  # requests decoding one token each over a full cache
    SAMPLING = "sampling_batches"  # rows of logits


@dataclass(frozen=True)
class Shapes:
    working: DType
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    moe_hidden: int
    moe_experts: int
    moe_top_k: int
    moe_width: int
    tokens: tuple[int, ...]
    prefill: tuple[int, ...]
    decode_batches: tuple[int, ...]
    decode_past: int
    block_size: int
    sampling_batches: tuple[int, ...]
    sample_top_k: int

    def points(self, sweep: Sweep) -> tuple[int, ...]:
        return getattr(self, sweep.value)

    def dtypes(self, operator: str) -> dict[str, DType]:
        """The allowed combination with the most tensors in the working dtype, then int64 indices."""
        combos = allowed_combos(get_spec(operator), self.working)
        return max(combos, key=lambda c: (sum(d is self.working for d in c.values()),
                                          sum(d is DType.I64 for d in c.values())))


def qwen3_bf16() -> Shapes:
    """Qwen3-8B (the MoE operators: Qwen3-30B-A3B) in bf16: the benchmark."""
    return Shapes(DType.BF16, hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=12288, vocab=151936,
                  moe_hidden=2048, moe_experts=128, moe_top_k=8, moe_width=768, tokens=(1, 32, 4096),
                  prefill=(1024, 4096), decode_batches=(1, 32), decode_past=4096, block_size=16,
                  sampling_batches=(32,), sample_top_k=50)


def qwen3_cpu() -> Shapes:
    """Qwen3-0.6B in float32 (the MoE operators a quarter of Qwen3-30B-A3B's experts): the C kernels'
    pytest-benchmark, at a decode step (1 token, batches of 1 and 8 over 1024 past positions) and a
    128-token prefill."""
    return Shapes(DType.F32, hidden=1024, heads=16, kv_heads=8, head_dim=128, intermediate=3072, vocab=151936,
                  moe_hidden=2048, moe_experts=32, moe_top_k=8, moe_width=768, tokens=(1, 128),
                  prefill=(128,), decode_batches=(1, 8), decode_past=1024, block_size=16,
                  sampling_batches=(8,), sample_top_k=50)


def small_f32() -> Shapes:
    """A few elements per dimension in float32: every workload's baselines checked on the CPU."""
    return Shapes(DType.F32, hidden=64, heads=8, kv_heads=2, head_dim=16, intermediate=40, vocab=100,
                  moe_hidden=32, moe_experts=8, moe_top_k=2, moe_width=24, tokens=(1, 5),
                  prefill=(9,), decode_batches=(1, 3), decode_past=19, block_size=16,
                  sampling_batches=(6,), sample_top_k=10)
