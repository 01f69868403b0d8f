"""Tensors laid out as a case asks, inside a larger buffer whose other elements are sentinels.

Inputs: the gaps hold NaN (or an out-of-range index), so a kernel that ignores strides reads
garbage and shows it. Outputs: every element, in the view and around it, starts as a poison bit
pattern, so unwritten elements and writes outside the view are both visible afterwards."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from operators.core.case import Layout, TensorCase
from operators.core.dtypes import DType
from operators.core.guard_pages import guarded_empty

GUARD_BYTES = 64  # sentinels before and after every view; keeps a CONTIGUOUS view 64-byte aligned
ROW_PADDING = 3  # elements: padded rows start misaligned

# Signalling-NaN payloads no arithmetic produces (arithmetic NaNs come out quiet and canonical).
POISON_BITS = {DType.F32: 0x7FA5A5A5, DType.F16: 0x7D5A, DType.BF16: 0x7FA5,
               DType.I32: -0x5A5A5A5B, DType.I64: -0x5A5A5A5A5A5A5A5B}
BIT_VIEWS = {DType.F32: torch.int32, DType.F16: torch.int16, DType.BF16: torch.int16,
             DType.I32: torch.int32, DType.I64: torch.int64}


def _as_signed(bits: int, dtype: DType) -> int:
    width = torch.iinfo(BIT_VIEWS[dtype]).bits
    return bits - (1 << width) if bits >= 1 << (width - 1) else bits


def strides_for(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    if layout is Layout.REVERSED:
        strides, step = [0] * len(shape), 1
        for d in range(len(shape)):
            strides[d] = step
            step *= max(shape[d], 1)
        return tuple(strides)
    dims = list(shape)
    if layout is Layout.PADDED and len(dims) >= 2:
        dims[-1] += ROW_PADDING
    strides, step = [0] * len(shape), 1
    for d in reversed(range(len(shape))):
        strides[d] = step
        step *= max(dims[d], 1)
    return tuple(strides)


def guard_elements(dtype: DType) -> int:
    return GUARD_BYTES // torch.empty(0, dtype=dtype.torch).element_size()


def view_offset(spec: TensorCase) -> int:
    return guard_elements(spec.dtype) + (1 if spec.layout is Layout.OFFSET else 0)


@dataclass(frozen=True)
class Placed:
    """A view and the buffer holding it (the view starts at `offset` elements into the buffer)."""

    view: torch.Tensor
    buffer: torch.Tensor
    spec: TensorCase

    @property
    def offset(self) -> int:
        return view_offset(self.spec)

    def bits(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view(BIT_VIEWS[self.spec.dtype])

    def mask(self, values: torch.Tensor | bool = True) -> torch.Tensor:
        """Boolean mask over the buffer: `values` (default all True) where the view has elements."""
        mask = torch.zeros(self.buffer.numel(), dtype=torch.bool, device=self.buffer.device)
        region = mask.as_strided(self.view.shape, self.view.stride(), self.offset)
        region.copy_(values) if isinstance(values, torch.Tensor) else region.fill_(values)
        return mask

    def coverage(self) -> torch.Tensor:
        return self.mask()


def storage_extent(shape: Sequence[int], strides: Sequence[int]) -> int:
    """Elements from a view's first to its last, inclusive (0 for an empty view)."""
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if all(shape) else 0


def _buffer(spec: TensorCase, device: torch.device, guard_pages: bool) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`guard_pages` (CPU): an inaccessible page right after the buffer and one before it."""
    strides = strides_for(spec.shape, spec.layout)
    numel = storage_extent(spec.shape, strides) + view_offset(spec) + guard_elements(spec.dtype)
    if guard_pages and device.type == "cpu":
        return guarded_empty(numel, spec.dtype.torch), strides
    return torch.empty(numel, dtype=spec.dtype.torch, device=device), strides


def place_input(values: torch.Tensor, spec: TensorCase, device: torch.device, guard_pages: bool = False) -> Placed:
    buffer, strides = _buffer(spec, device, guard_pages)
    if spec.dtype.is_float:
        buffer.fill_(math.nan)
    else:
        buffer.fill_(torch.iinfo(spec.dtype.torch).max)
    view = buffer.as_strided(spec.shape, strides, view_offset(spec))
    view.copy_(values.to(device=device, dtype=spec.dtype.torch))
    return Placed(view, buffer, spec)


def place_poisoned_output(spec: TensorCase, device: torch.device, guard_pages: bool = False) -> Placed:
    buffer, strides = _buffer(spec, device, guard_pages)
    buffer.view(BIT_VIEWS[spec.dtype]).fill_(_as_signed(POISON_BITS[spec.dtype], spec.dtype))
    return Placed(buffer.as_strided(spec.shape, strides, view_offset(spec)), buffer, spec)


def poison_value(dtype: DType) -> int:
    return _as_signed(POISON_BITS[dtype], dtype)
