"""Published Qwen3 configurations: the shape corpus of the case strategies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Qwen3Config:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width, or the width of one expert for MoE models
    tied: bool
    experts: int = 0
    experts_per_token: int = 0

    @property
    def projections(self) -> dict[str, tuple[int, int]]:
        """Linear layers as (in_features, out_features)."""
        return {
            "q_proj": (self.hidden, self.heads * self.head_dim),
            "k_proj": (self.hidden, self.kv_heads * self.head_dim),
            "o_proj": (self.heads * self.head_dim, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
            "lm_head": (self.hidden, VOCAB_SIZE),
        }


VOCAB_SIZE = 151936
ROPE_THETA = 1_000_000.0
RMS_EPS = 1e-6

QWEN3_CONFIGS = (
    Qwen3Config("Qwen3-0.6B", 1024, 28, 16, 8, 128, 3072, True),
    Qwen3Config("Qwen3-1.7B", 2048, 28, 16, 8, 128, 6144, True),
    Qwen3Config("Qwen3-4B", 2560, 36, 32, 8, 128, 9728, True),
    Qwen3Config("Qwen3-8B", 4096, 36, 32, 8, 128, 12288, False),
    Qwen3Config("Qwen3-14B", 5120, 40, 40, 8, 128, 17408, False),
    Qwen3Config("Qwen3-32B", 5120, 64, 64, 8, 128, 25600, False),
    Qwen3Config("Qwen3-30B-A3B", 2048, 48, 32, 4, 128, 768, False, experts=128, experts_per_token=8),
    Qwen3Config("Qwen3-235B-A22B", 4096, 94, 64, 4, 128, 1536, False, experts=128, experts_per_token=8),
)

# Sizes that are not multiples of a vector width or a block: primes, odd, one less and one more.
AWKWARD_SIZES = (1, 2, 3, 7, 17, 31, 63, 65, 127, 129, 251, 1023, 1025)
