"""The checker of VERDICT.md: a case is prepared once (inputs, reference, baselines) and any
number of kernels are judged on it, each giving an immutable CaseResult."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from operators.core.budget import NO_SENSITIVITY, Sensitivity
from operators.core.case import Case
from operators.core.device import Device, once_more_if_out_of_memory
from operators.core.dtypes import DType
from operators.core.exits import is_out_of_memory
from operators.core.kernel import Kernel, kernel_exception
from operators.core.kernel_errors import KernelError, KernelUnsupportedError
from operators.core.metrics import HUGGING_FACE, ErrorMetrics, budget_checks, error_metrics
from operators.core.placement import Placed, place_input, place_poisoned_output, poison_value
from operators.core.result import CaseResult, OutputResult, Verdict
from operators.core.spec import OperatorSpec


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_inputs(spec: OperatorSpec, case: Case, device: torch.device) -> dict[str, Placed]:
    """Inputs drawn on the target device (a GPU case's weights never pass through host memory)."""
    generator = torch.Generator(device=device).manual_seed(case.seed)
    with device:
        values = spec.values(case, generator)
    return {name: place_input(values[name], tensor, device) for name, tensor in case.inputs.items()}


def to_reference_precision(tensor: torch.Tensor) -> torch.Tensor:
    """float64 on the tensor's own device: a GPU case's reference runs on the GPU."""
    tensor = tensor.detach()
    return tensor.to(torch.float64) if tensor.is_floating_point() else tensor


def reference_inputs(spec: OperatorSpec, clean: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t if n in spec.upcast_by_reference else to_reference_precision(t) for n, t in clean.items()}


def _first_index(mask: torch.Tensor) -> list[int]:
    return [int(i) for i in mask.nonzero()[0].tolist()] if mask.any() else []


def expected_writes(placed: Placed, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean mask over the buffer: the elements the kernel must write (all of the view by default)."""
    return placed.coverage() if mask is None else placed.mask(mask)


def contract_reasons(inputs: Mapping[str, Placed], snapshots: Mapping[str, torch.Tensor],
                     outputs: Mapping[str, Placed], masks: Mapping[str, torch.Tensor] | None = None) -> list[str]:
    """Inputs untouched, every expected output element written, nothing written anywhere else."""
    reasons = []
    for name, placed in inputs.items():
        changed = placed.bits(placed.buffer) != placed.bits(snapshots[name])
        if changed.any():
            reasons.append(f"input '{name}' was modified: {int(changed.sum())} elements of its buffer changed")
    for name, placed in outputs.items():
        poison = poison_value(placed.spec.dtype)
        expected = expected_writes(placed, (masks or {}).get(name))
        poisoned = placed.bits(placed.buffer) == poison
        unwritten = expected & poisoned
        if unwritten.any():
            view_unwritten = placed.bits(placed.view) == poison
            if masks and name in masks:
                view_unwritten &= masks[name].to(view_unwritten.device)
            reasons.append(f"output '{name}': {int(unwritten.sum())} of {int(expected.sum())} elements left "
                           f"unwritten (first at {_first_index(view_unwritten)})")
        outside = ~expected & ~poisoned
        if outside.any():
            reasons.append(f"output '{name}': {int(outside.sum())} elements written where nothing may be "
                           "(outside the written slots, in stride gaps or the guard band)")
    return reasons


def nonfinite_class(values: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf (float64 in)."""
    return torch.where(torch.isnan(values), 1, torch.where(values == math.inf, 2, torch.where(values == -math.inf, 3, 0)))


def parity_reasons(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: DType,
                   baselines: tuple[torch.Tensor, ...] = ()) -> list[str]:
    """NaN exactly where the reference has NaN; +-Inf where the reference rounds to +-Inf in dtype,
    except at the overflow edge (VERDICT.md, non-finite policy): an Inf (or a finite value where
    the reference rounds to Inf) is correct where a correct same-dtype computation gives the same,
    or where the exact value is at least the largest finite value of dtype (one more rounding of a
    correct computation goes either way there)."""
    out = out.detach().to(ref.device, torch.float64)
    ref_rounded = ref.to(dtype.torch).to(torch.float64)
    nan_differs = torch.isnan(out) != torch.isnan(ref)
    out_class = nonfinite_class(out)
    inf_differs = ~torch.isnan(out) & ~torch.isnan(ref) & (out_class != nonfinite_class(ref_rounded))
    if inf_differs.any():
        same_sign = (out_class == 0) | (torch.sign(out) == torch.sign(ref))
        excused = (ref.abs() >= torch.finfo(dtype.torch).max) & same_sign
        for baseline in baselines:
            excused |= nonfinite_class(baseline.detach().to(ref.device, torch.float64)) == out_class
        inf_differs &= ~excused
    reasons = []
    for label, differs in (("NaN", nan_differs), ("Inf", inf_differs)):
        if differs.any():
            where = _first_index(differs)
            reasons.append(f"output '{name}': {label} parity broken at {int(differs.sum())} positions "
                           f"(first at {where}: out={out[tuple(where)].item()!r}, "
                           f"reference={ref_rounded[tuple(where)].item()!r})")
    return reasons


def magnitude_reasons(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: DType) -> list[str]:
    """An all-zero or constant output never passes where the reference, rounded to dtype, varies."""
    out = out.detach().to(ref.device, torch.float64)
    ref = ref.to(dtype.torch).to(torch.float64)
    finite = torch.isfinite(out) & torch.isfinite(ref)
    o, r = out[finite], ref[finite]
    if r.numel() < 2 or r.max() == r.min():
        return []
    if o.max() == o.min():
        return [f"output '{name}' is constant ({o[0].item()!r}) where the reference varies"]
    return []


def written_masks(spec: OperatorSpec, case: Case, clean: Mapping[str, torch.Tensor],
                  target: torch.device) -> dict[str, torch.Tensor]:
    """Boolean masks of the output elements the kernel must write, for specs that write only some."""
    if not spec.written:
        return {}
    on_cpu = {n: to_reference_precision(t).cpu() for n, t in clean.items()}
    return {n: m.to(target) for n, m in spec.written(case, on_cpu).items()}


@dataclass(frozen=True)
class Expected:
    """What a correct kernel's numeric outputs are judged against: the float64 reference and the
    correct same-dtype computations (Hugging Face's first, then the spec's other formulations),
    each output's baselines already measured against the reference."""

    reference: Mapping[str, torch.Tensor]
    baselines: Mapping[str, Mapping[str, torch.Tensor]]  # computation name -> output name -> values
    baseline_metrics: Mapping[str, Mapping[str, ErrorMetrics]]  # output name -> computation name -> metrics


@dataclass(frozen=True)
class PreparedCase:
    """One case drawn once, its reference and baselines computed once, for judging any number of
    implementations on exactly the same inputs."""

    spec: OperatorSpec
    case: Case
    device: Device
    clean: Mapping[str, torch.Tensor]  # the inputs as the kernel sees them (working dtypes), on the device
    masks: Mapping[str, torch.Tensor]
    sensitivity: Sensitivity
    expected: Expected | None  # None when the reference depends on the kernel's decisions


def select(tensor: torch.Tensor, masks: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    return tensor[masks[name]] if name in masks else tensor


def compute_expected(spec: OperatorSpec, case: Case, clean: Mapping[str, torch.Tensor],
                     masks: Mapping[str, torch.Tensor], decisions: Mapping[str, torch.Tensor] | None = None) -> Expected:
    precise = reference_inputs(spec, clean)
    reference = spec.run_reference(precise, case.attributes, torch.float64, decisions)
    computations = {HUGGING_FACE: spec.run_reference(clean, case.attributes, torch.float32, decisions)}
    computations.update({name: spec.run_variant(variant, clean, case.attributes, decisions)
                         for name, variant in spec.variants.items()})
    baselines: dict[str, dict[str, torch.Tensor]] = {}
    metrics: dict[str, dict[str, ErrorMetrics]] = {name: {} for name in spec.numeric_outputs}
    for computation, outputs in computations.items():
        baselines[computation] = {}
        for name in spec.numeric_outputs:
            dtype = case.outputs[name].dtype
            values = select(outputs[name].to(dtype.torch), masks, name)
            baselines[computation][name] = values
            metrics[name][computation] = error_metrics(values, select(reference[name], masks, name), dtype)
    return Expected(reference, baselines, metrics)


def prepare_inputs(spec: OperatorSpec, case: Case, device: Device, clean: Mapping[str, torch.Tensor]) -> PreparedCase:
    """A PreparedCase from given inputs (the benchmark's, which it may rearrange)."""
    missing = [name for name in spec.attributes if name not in case.attributes]
    if missing:
        raise ValueError(f"{spec.name}: the case lacks the attribute(s) {', '.join(missing)}")
    target = device.torch_device()
    masks = written_masks(spec, case, clean, target)
    precise = reference_inputs(spec, clean)
    sensitivity = spec.sensitivity(precise, case.attributes) if spec.sensitivity else NO_SENSITIVITY
    expected = None if spec.decisions else compute_expected(spec, case, clean, masks)
    return PreparedCase(spec, case, device, dict(clean), masks, sensitivity, expected)


def prepare_case(spec: OperatorSpec, case: Case, device: Device) -> PreparedCase:
    inputs = build_inputs(spec, case, device.torch_device())
    return prepare_inputs(spec, case, device, {name: placed.view.clone() for name, placed in inputs.items()})


def judge_outputs(prepared: PreparedCase, views: Mapping[str, torch.Tensor]) -> tuple[list[str], list[OutputResult]]:
    """The decisions judged and every numeric output against the float64 reference and its budget."""
    spec, case, masks = prepared.spec, prepared.case, prepared.masks
    reasons: list[str] = []
    expected = prepared.expected
    if spec.decisions:
        decisions = {name: views[name].detach().to("cpu") for name in spec.decisions}
        precise = {n: t.cpu() for n, t in reference_inputs(spec, prepared.clean).items()}
        reasons += spec.judge(decisions, precise, case.attributes, case.dtype)
        if reasons or not spec.numeric_outputs:
            return reasons, []
        target = prepared.device.torch_device()
        expected = compute_expected(spec, case, prepared.clean, masks, {n: d.to(target) for n, d in decisions.items()})
    results = []
    for name in spec.numeric_outputs:
        dtype = case.outputs[name].dtype
        out, ref = select(views[name], masks, name), select(expected.reference[name], masks, name)
        baselines = tuple(outputs[name] for outputs in expected.baselines.values())
        reasons += parity_reasons(name, out, ref, dtype, baselines)
        reasons += magnitude_reasons(name, out, ref, dtype)
        metrics = error_metrics(out, ref, dtype)
        checks = budget_checks(metrics, expected.baseline_metrics[name], spec.budget, dtype, prepared.sensitivity)
        reasons += [f"output '{name}': {check.describe()}" for check in checks if not check.passed]
        results.append(OutputResult(name=name, dtype=dtype, metrics=metrics, baselines=expected.baseline_metrics[name],
                                    checks=tuple(checks)))
    return reasons, results


OnFailure = Callable[[PreparedCase, Mapping[str, torch.Tensor], CaseResult], None]


def run_kernel(prepared: PreparedCase, kernel: Kernel, backend: str, guard_pages: bool = False,
               on_failure: OnFailure | None = None) -> CaseResult:
    """One implementation on the prepared case: fresh copies of its inputs, poisoned outputs (between
    guard pages, on the CPU, with `guard_pages`). `on_failure` sees a failed case's outputs while
    they exist (the run's pictures).

    Out of memory, the case runs once more after PyTorch's cache is released (the report says so);
    out of memory again, the error propagates: the machine's limit, not a defect."""
    return once_more_if_out_of_memory(
        lambda retried: attempt_kernel(prepared, kernel, backend, guard_pages, on_failure, retried),
        prepared.device.torch_device())


def attempt_kernel(prepared: PreparedCase, kernel: Kernel, backend: str, guard_pages: bool,
                   on_failure: OnFailure | None, retried: bool) -> CaseResult:
    started = time.perf_counter()
    spec, case = prepared.spec, prepared.case
    target = prepared.device.torch_device()
    inputs = {name: place_input(prepared.clean[name], case.inputs[name], target, guard_pages) for name in case.inputs}
    snapshots = {name: placed.buffer.clone() for name, placed in inputs.items()}
    outputs = {name: place_poisoned_output(case.outputs[name], target, guard_pages) for name in spec.outputs}
    implementation: dict[str, Any] = dict(kernel.implementation)
    if retried:
        implementation["retried_out_of_memory"] = True
    calls_before = kernel.call_count() if kernel.call_count else None

    def finish(verdict: Verdict, reasons: list[str], results: tuple[OutputResult, ...] = ()) -> CaseResult:
        if calls_before is not None:
            implementation["calls"] = kernel.call_count() - calls_before
        return CaseResult(case=case, backend=backend, device=prepared.device, implementation=implementation,
                          verdict=verdict, reasons=tuple(reasons), outputs=results, budget=spec.budget,
                          seconds=time.perf_counter() - started)

    arguments = {**{n: p.view for n, p in outputs.items()}, **{n: p.view for n, p in inputs.items()},
                 **{name: case.attributes[name] for name in spec.attributes}}
    try:
        kernel.settled_call(**arguments)
        synchronize(target)
    except KernelUnsupportedError as error:
        return finish(Verdict.UNSUPPORTED, [f"unsupported: {error}"])
    except (Exception, SystemExit) as error:  # a broken kernel is a failed row, not a dead run
        if is_out_of_memory(error):
            raise  # the machine's limit (other processes on the device, too small a card), not a defect
        if isinstance(error, KernelError):
            return finish(Verdict.FAIL, [f"kernel rejected a call inside its contract: {error}"])
        return finish(Verdict.FAIL, [kernel_exception(error)])

    reasons = contract_reasons(inputs, snapshots, outputs, prepared.masks)
    views = {n: p.view for n, p in outputs.items()}
    judged, results = judge_outputs(prepared, views)
    reasons += judged
    result = finish(Verdict.FAIL if reasons else Verdict.PASS, reasons, tuple(results))
    if on_failure is not None and result.verdict is Verdict.FAIL and results:
        on_failure(prepared, views, result)
    return result


def check_case(spec: OperatorSpec, case: Case, kernel: Kernel, device: Device, backend: str,
               guard_pages: bool = False, on_failure: OnFailure | None = None) -> CaseResult:
    return run_kernel(prepare_case(spec, case, device), kernel, backend, guard_pages, on_failure)
