"""OperatorSpec: the single source of truth for one operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from hypothesis.strategies import SearchStrategy

from operators.budget import Budget
from operators.case import Case
from operators.device import Device
from operators.dtypes import DType

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class OperatorSpec:
    """One operator: its call signature, dtype contract, cases, reference and verdict parameters.

    A kernel is called as `kernel(**outputs, **inputs, **attributes)` and writes its outputs.
    """

    name: str
    summary: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: tuple[str, ...]
    # The dtypes each float/index tensor may be given when the contract is enumerated.
    dtype_options: Mapping[str, tuple[DType, ...]]
    # True when a combination of input and output dtypes is inside the contract.
    allows: Callable[[Mapping[str, DType]], bool]
    contract: str  # the contract in words, printed in the report
    # Hypothesis strategy of cases for a device and working dtype.
    cases: Callable[[Device, DType], SearchStrategy[Case]]
    # Logical input values for a case (float64 or int64, on the CPU), drawn from the generator.
    values: Callable[[Case, torch.Generator], dict[str, torch.Tensor]]
    # The reference: outputs from inputs; `upcast` is the precision of the internal computation
    # (torch.float64 for the reference, Hugging Face's float32 for the same-dtype baseline).
    reference: Callable[[Tensors, Mapping[str, Any], torch.dtype], dict[str, torch.Tensor]]
    # A small case used by the dtype-contract suite, given a combination of dtypes.
    contract_case: Callable[[Mapping[str, DType]], Case]
    budget: Budget = Budget()

    def __post_init__(self) -> None:
        unknown = set(self.dtype_options) - set(self.inputs) - set(self.outputs)
        if unknown:
            raise ValueError(f"{self.name}: dtype_options names unknown tensors {sorted(unknown)}")
