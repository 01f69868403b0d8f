"""The speed targets a workload is held to (bf16 on an H100-class card), as ratios and fractions,
derived from its operator's kind."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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


class Kind(Enum):
    MEMORY_BOUND = "memory-bound"  # 90% of copy bandwidth and no slower than PyTorch
    PRODUCTION = "production"  # a fraction of a production kernel's speed (F.linear, SDPA)
    UNTARGETED = "untargeted"


def target_for(kind: Kind, vs_production: float | None, large: bool) -> Target | None:
    """The target at a workload's large shapes; none elsewhere."""
    if not large or kind is Kind.UNTARGETED:
        return None
    if kind is Kind.MEMORY_BOUND:
        return Target(vs_pytorch=1.0, of_copy_bandwidth=0.9)
    return Target(vs_pytorch=vs_production)
