"""OperatorSpec: the single source of truth for one operator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from hypothesis.strategies import SearchStrategy

from operators.core.boundaries import labels as length_labels
from operators.core.budget import Budget
from operators.core.case import Case
from operators.core.device import Device
from operators.core.dtypes import DType

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class BadValue:
    """An input value outside the operator's contract (an id past the vocabulary, a slot written
    twice): the kernel must refuse the call with KernelValueError naming `tensor`, writing nothing.
    `place(inputs, case)` returns the index of the element to replace (one the kernel reads) and
    the value to put there, from the contract case and its valid inputs."""

    tensor: str
    what: str  # the value in words, for the report: "an id equal to the vocabulary size"
    place: Callable[[Tensors, Case], tuple[tuple[int, ...], float]]


def first_element(tensor: torch.Tensor) -> tuple[int, ...]:
    return (0,) * tensor.dim()


def last_element(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(size - 1 for size in tensor.shape)


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
    # Logical input values for a case (float64 or int64, on the case's device), drawn from the generator.
    values: Callable[[Case, torch.Generator], dict[str, torch.Tensor]]
    # The reference: outputs from inputs; `upcast` is the precision of the internal computation
    # (torch.float64 for the reference, Hugging Face's float32 for the same-dtype baseline).
    reference: Callable[[Tensors, Mapping[str, Any], torch.dtype], dict[str, torch.Tensor]]
    # A small case used by the dtype-contract suite, given a combination of dtypes.
    contract_case: Callable[[Mapping[str, DType]], Case]
    budget: Budget = Budget()
    # Outputs the kernel writes only in part (a KV cache): name -> bool mask of the elements it must
    # write; every other element must keep its poison.
    written: Callable[[Case, Tensors], dict[str, torch.Tensor]] | None = None
    # Discrete outputs (token ids, expert ids), judged exactly and tie-aware by `judge`, which returns
    # failure reasons. The reference then receives them as `decisions` (the router's weights are
    # judged on the experts the kernel chose).
    decisions: tuple[str, ...] = ()
    judge: Callable[[Tensors, Tensors, Mapping[str, Any], DType], list[str]] | None = None
    # The magnitude at which one float32 rounding of an intermediate reaches the output (see
    # Budget.sensitivity_ulps), from the float64 inputs.
    sensitivity: Callable[[Tensors, Mapping[str, Any]], float] | None = None
    optional_inputs: tuple[str, ...] = ()  # inputs a case may leave out (linear's bias)
    # Inputs the reference receives in the working dtype and upcasts a slice at a time itself (the
    # experts' weights: 19 GB as float64 at Qwen3-235B-A22B's shapes); float64 holds every working
    # value exactly, so the reference is the same.
    upcast_by_reference: tuple[str, ...] = ()
    # Other correct computations in the working dtype besides Hugging Face's (a flash-style online
    # softmax, say), name -> function(inputs, attributes) -> outputs (with `decisions` as a third
    # argument where the operator has them): the budget's baseline is the largest error among them
    # all (VERDICT.md, "Why correct implementations differ").
    variants: Mapping[str, Callable[[Tensors, Mapping[str, Any]], dict[str, torch.Tensor]]] = field(
        default_factory=dict)
    # Values the contract excludes, each sent to the kernel on the contract case (operators/core/contract.py).
    bad_values: tuple[BadValue, ...] = ()
    # The lengths where kernels change strategy, by dimension name ({"row": 4096}), of a case:
    # operators/core/boundaries.py labels them and `draw_cases` covers every class the strategy reaches.
    lengths: Callable[[Case], Mapping[str, int]] | None = None

    def boundary_labels(self, case: Case) -> tuple[str, ...]:
        return length_labels(self.lengths(case)) if self.lengths else ()

    def __post_init__(self) -> None:
        unknown = set(self.dtype_options) - set(self.inputs) - set(self.outputs)
        if unknown:
            raise ValueError(f"{self.name}: dtype_options names unknown tensors {sorted(unknown)}")
        if bool(self.decisions) != (self.judge is not None):
            raise ValueError(f"{self.name}: discrete outputs need a judge, and a judge needs discrete outputs")

    @property
    def numeric_outputs(self) -> tuple[str, ...]:
        return tuple(name for name in self.outputs if name not in self.decisions)

    def run_reference(self, inputs: Tensors, attributes: Mapping[str, Any], upcast: torch.dtype,
                      decisions: Tensors | None = None) -> dict[str, torch.Tensor]:
        if self.decisions:
            return self.reference(inputs, attributes, upcast, decisions)
        return self.reference(inputs, attributes, upcast)

    def run_variant(self, variant, inputs: Tensors, attributes: Mapping[str, Any],
                    decisions: Tensors | None = None) -> dict[str, torch.Tensor]:
        return variant(inputs, attributes, decisions) if self.decisions else variant(inputs, attributes)
