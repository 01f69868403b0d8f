"""Input values by regime: float64 tensors drawn from a seeded generator, before rounding."""

from __future__ import annotations

import math

import torch

from operators.core.case import Regime
from operators.core.dtypes import DType

# Largest magnitudes for the NEAR_LIMIT regime: float16 values whose squares overflow float16 but
# not float32; bfloat16/float32 values whose sums of squares over 5120 channels stay finite in float32.
NEAR_LIMIT = {DType.F16: 2.0e4, DType.BF16: 1.0e17, DType.F32: 1.0e17}


def draw(shape: tuple[int, ...], regime: Regime, dtype: DType, generator: torch.Generator,
         near_limit: float | None = None) -> torch.Tensor:
    """Values of the given regime; `near_limit` overrides the NEAR_LIMIT magnitude for an operator."""
    normal = torch.randn(shape, generator=generator, dtype=torch.float64)
    if not normal.numel():
        return normal
    if regime is Regime.NORMAL:
        return normal
    if regime is Regime.HEAVY_TAILED:
        return normal * torch.exp(1.5 * torch.randn(shape, generator=generator, dtype=torch.float64))
    if regime is Regime.OUTLIER_CHANNELS:
        channels = shape[-1]
        count = max(1, channels // 50)
        picked = torch.randperm(channels, generator=generator)[:count]
        boost = torch.ones(channels, dtype=torch.float64)
        boost[picked] = 30 + 270 * torch.rand(count, generator=generator, dtype=torch.float64)
        return normal * boost
    if regime is Regime.NEAR_LIMIT:
        limit = near_limit if near_limit is not None else NEAR_LIMIT[dtype]
        return normal / normal.abs().max().clamp_min(1e-30) * limit
    if regime is Regime.TINY_RMS:
        rows = shape[:-1] + (1,)
        exponents = torch.rand(rows, generator=generator, dtype=torch.float64) * 2 - 1
        return normal * math.sqrt(1e-6) * torch.pow(10.0, exponents)
    if regime is Regime.CONSTANT_ROWS:
        return torch.randn(shape[:-1] + (1,), generator=generator, dtype=torch.float64).expand(shape).clone()
    if regime is Regime.MASKED:
        masked = normal.masked_fill(torch.rand(shape, generator=generator) < 0.2, -math.inf)
        if len(shape) >= 2 and shape[-2] > 1:
            masked[..., -1, :] = -math.inf  # a fully masked row: softmax gives NaN, as PyTorch does
        return masked
    if regime is Regime.LARGE_SCORES:
        return normal * (30 + 70 * torch.rand(shape[:-1] + (1,), generator=generator, dtype=torch.float64))
    raise ValueError(f"unknown regime {regime}")


def norm_weight(size: int, generator: torch.Generator) -> torch.Tensor:
    """RMSNorm weights as trained models have them: near 1, a few large outliers."""
    weight = 1 + 0.1 * torch.randn(size, generator=generator, dtype=torch.float64)
    outliers = torch.randperm(size, generator=generator)[: max(1, size // 100)]
    weight[outliers] *= 8
    return weight
