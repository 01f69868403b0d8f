"""Where a failing case's error sits: each numeric output's |out - ref| as a share of its max-abs
budget, folded to two dimensions (rows x columns; for three or more dimensions the largest over the
last one, e.g. heads x positions over head_dim), beside the reference's magnitude."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from operators.core.checker import PreparedCase, compute_expected, to_reference_precision
from operators.core.result import CaseResult

LARGEST_MAP = (256, 1024)  # rows x columns drawn at most; larger maps keep the largest value of each block


@dataclass(frozen=True)
class ErrorMap:
    output: str
    error: np.ndarray  # |out - ref| / the max-abs limit; > 1 is over the budget, inf where out is NaN/Inf
    magnitude: np.ndarray  # |ref|, folded the same way
    limit: float
    rows: str  # what the rows and columns index, in words
    columns: str


def fold(values: torch.Tensor) -> tuple[torch.Tensor, str, str]:
    """Two dimensions, keeping each block's largest value, with what the axes index."""
    shape = list(values.shape)
    if values.dim() == 0:
        return values.reshape(1, 1), "-", "-"
    if values.dim() == 1:
        return values.reshape(1, -1), "-", f"dim 0 (size {shape[0]})"
    if values.dim() >= 3:
        values = values.amax(dim=-1)  # over the last dimension (head_dim, hidden)
        values = values.reshape(-1, values.shape[-1]).transpose(0, 1)
        leading = (f"dim 0 (size {shape[0]})" if len(shape) == 3 else
                   f"dims 0-{len(shape) - 3} flattened ({' x '.join(str(n) for n in shape[:-2])})")
        return values, f"dim {len(shape) - 2} (size {shape[-2]}; max over dim {len(shape) - 1}, size {shape[-1]})", leading
    return values, f"dim 0 (size {shape[0]})", f"dim 1 (size {shape[1]})"


def shrink(values: torch.Tensor) -> torch.Tensor:
    rows, columns = values.shape
    target = (min(rows, LARGEST_MAP[0]), min(columns, LARGEST_MAP[1]))
    if (rows, columns) == target:
        return values
    return torch.nn.functional.adaptive_max_pool2d(values[None, None], target)[0, 0]


def error_maps(prepared: PreparedCase, views: Mapping[str, torch.Tensor], result: CaseResult) -> list[ErrorMap]:
    expected = prepared.expected
    if expected is None:  # the reference follows the kernel's decisions (the router's chosen experts)
        target = prepared.device.torch_device()
        decisions = {n: views[n].detach() for n in prepared.spec.decisions}
        expected = compute_expected(prepared.spec, prepared.case, prepared.clean, prepared.masks,
                                    {n: d.to(target) for n, d in decisions.items()})
    maps = []
    for output in result.outputs:
        limit = next((c.limit for c in output.checks if c.measure == "max_abs"), None)
        if not limit or not math.isfinite(limit):
            continue
        out = to_reference_precision(views[output.name].detach())
        ref = expected.reference[output.name].to(out.device, torch.float64)
        error = (out - ref).abs() / limit
        error = torch.where(torch.isfinite(error), error, torch.full_like(error, math.inf))
        if output.name in prepared.masks:
            error = torch.where(prepared.masks[output.name].to(error.device), error, torch.zeros_like(error))
        folded, rows, columns = fold(error.cpu())
        magnitude, _, _ = fold(ref.abs().cpu())
        maps.append(ErrorMap(output.name, shrink(folded).numpy(), shrink(magnitude).numpy(), limit, rows, columns))
    return maps
