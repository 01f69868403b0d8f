"""The speed targets a workload is held to (bf16 on an H100-class card), as ratios and fractions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    vs_pytorch: float | None = None  # native speed / PyTorch's best speed at least this
    of_copy_bandwidth: float | None = None  # fraction of the measured copy bandwidth at least this

    def describe(self) -> str:
        parts = []
        if self.vs_pytorch is not None:
            parts.append(f">= {self.vs_pytorch:g}x PyTorch")
        if self.of_copy_bandwidth is not None:
            parts.append(f">= {self.of_copy_bandwidth:.0%} of copy bandwidth")
        return ", ".join(parts)


MEMORY_BOUND = ("rms_norm", "add_rms_norm", "rope", "swiglu", "embedding", "kv_cache_write", "kv_cache_write_paged",
                "softmax", "causal_softmax")


def target_for(operator: str, large: bool) -> Target | None:
    """Memory-bound operators at large shapes: 90% of copy bandwidth and no slower than PyTorch;
    decode attention 0.9x SDPA; prefill 0.7x SDPA (flash); linear within 10% of F.linear."""
    if operator in MEMORY_BOUND and large:
        return Target(vs_pytorch=1.0, of_copy_bandwidth=0.9)
    if operator in ("attention_decode", "attention_decode_paged") and large:
        return Target(vs_pytorch=0.9)
    if operator == "attention_prefill" and large:
        return Target(vs_pytorch=0.7)
    if operator == "linear":
        return Target(vs_pytorch=0.9)
    return None
