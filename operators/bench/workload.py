"""A workload: one case of an operator timed in the benchmark, and the traffic and FLOPs it is judged by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from operators.core.case import Case

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Workload:
    name: str
    case: Case
    flops: float = 0.0  # TFLOP/s vs the matmul rate where non-zero
    large: bool = False  # the shapes the speed targets speak of (and torch.compile is timed at)
    # Replaces drawn inputs before timing (e.g. every request's cache full to its length).
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = field(default=None, compare=False)
    # The bytes moved (GB/s vs copy bandwidth), from inputs and outputs; all of both by default.
    bytes_of: Callable[[Tensors, Tensors], float] | None = field(default=None, compare=False)

    @property
    def operator(self) -> str:
        return self.case.operator


def full_bytes(inputs: Tensors, outputs: Tensors) -> float:
    return float(sum(t.numel() * t.element_size() for t in (*inputs.values(), *outputs.values())))
