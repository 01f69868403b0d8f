"""Device timing: medians of triton.testing.do_bench, and the two ceilings measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

WARMUP_MS, REPEAT_MS = 25, 100
COPY_BYTES = 1 << 30  # a 1 GiB copy: far beyond any cache
MATMUL_SIZE = 8192


def median_ms(function) -> float:
    from triton.testing import do_bench  # the GPU image's triton; imported only when timing

    return float(do_bench(function, warmup=WARMUP_MS, rep=REPEAT_MS, return_mode="median"))


@dataclass(frozen=True)
class Ceilings:
    copy_gb_per_s: float  # bytes read + bytes written of a device-to-device copy
    matmul_tflop_per_s: float  # bf16 F.linear, 8192^3

    def to_json(self) -> dict:
        return {"copy_gb_per_s": self.copy_gb_per_s, "matmul_tflop_per_s": self.matmul_tflop_per_s,
                "copy_bytes": COPY_BYTES, "matmul_size": MATMUL_SIZE}


def measure_ceilings(device: torch.device) -> Ceilings:
    source = torch.randn(COPY_BYTES // 2, device=device, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    copy_ms = median_ms(lambda: target.copy_(source))
    del source, target
    x = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    w = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    matmul_ms = median_ms(lambda: F.linear(x, w))
    return Ceilings(copy_gb_per_s=2 * COPY_BYTES / copy_ms / 1e6,
                    matmul_tflop_per_s=2 * MATMUL_SIZE ** 3 / matmul_ms / 1e9)
