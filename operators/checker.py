"""The checker of VERDICT.md: runs one case and returns its immutable CaseResult."""

from __future__ import annotations

import time
import traceback
from typing import Any, Mapping

import torch

from kernels.errors import KernelError
from operators.case import Case
from operators.device import Device
from operators.dtypes import DType
from operators.kernel import Kernel
from operators.metrics import budget_checks, error_metrics
from operators.placement import Placed, place_input, place_poisoned_output, poison_value
from operators.result import CaseResult, OutputResult, Verdict
from operators.spec import OperatorSpec


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


def parity_reasons(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: DType) -> list[str]:
    out = out.detach().to(ref.device, torch.float64)
    ref_rounded = ref.to(dtype.torch).to(torch.float64)
    nan_differs = torch.isnan(out) != torch.isnan(ref)
    inf_differs = (torch.isinf(out) != torch.isinf(ref_rounded)) | (
        torch.isinf(out) & torch.isinf(ref_rounded) & (torch.sign(out) != torch.sign(ref_rounded)))
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


def judge_outputs(spec: OperatorSpec, case: Case, clean: Mapping[str, torch.Tensor], views: Mapping[str, torch.Tensor],
                  masks: Mapping[str, torch.Tensor], target: torch.device) -> tuple[list[str], list[OutputResult]]:
    """The decisions judged and every numeric output against the float64 reference and its budget."""
    precise = {n: to_reference_precision(t) for n, t in clean.items()}
    reasons: list[str] = []
    decisions = None
    if spec.decisions:
        decisions = {name: views[name].detach().to("cpu") for name in spec.decisions}
        reasons += spec.judge(decisions, {n: t.cpu() for n, t in precise.items()}, case.attributes, case.dtype)
        if reasons:
            return reasons, []
    on_target = {n: d.to(target) for n, d in decisions.items()} if decisions else None
    reference = spec.run_reference(precise, case.attributes, torch.float64, on_target)
    baseline = spec.run_reference(clean, case.attributes, torch.float32, on_target)
    sensitivity = spec.sensitivity(precise, case.attributes) if spec.sensitivity else 0.0
    results = []
    for name in spec.numeric_outputs:
        dtype = case.outputs[name].dtype
        out, ref, base = views[name], reference[name], baseline[name].to(dtype.torch)
        if name in masks:
            mask = masks[name]
            out, ref, base = out[mask], ref[mask], base[mask]
        reasons += parity_reasons(name, out, ref, dtype)
        reasons += magnitude_reasons(name, out, ref, dtype)
        metrics, base_metrics = error_metrics(out, ref, dtype), error_metrics(base, ref, dtype)
        checks = budget_checks(metrics, base_metrics, spec.budget, dtype, sensitivity)
        reasons += [f"output '{name}': {check.describe()}" for check in checks if not check.passed]
        results.append(OutputResult(name=name, dtype=dtype, metrics=metrics, baseline=base_metrics,
                                    checks=tuple(checks)))
    return reasons, results


def check_case(spec: OperatorSpec, case: Case, kernel: Kernel, device: Device, backend: str) -> CaseResult:
    started = time.perf_counter()
    target = device.torch_device()
    inputs = build_inputs(spec, case, target)
    clean = {name: placed.view.clone() for name, placed in inputs.items()}
    snapshots = {name: placed.buffer.clone() for name, placed in inputs.items()}
    outputs = {name: place_poisoned_output(case.outputs[name], target) for name in spec.outputs}
    implementation: dict[str, Any] = dict(kernel.implementation)
    calls_before = kernel.call_count() if kernel.call_count else None

    def finish(verdict: Verdict, reasons: list[str], results: tuple[OutputResult, ...] = ()) -> CaseResult:
        if calls_before is not None:
            implementation["calls"] = kernel.call_count() - calls_before
        return CaseResult(case=case, backend=backend, device=device, implementation=implementation,
                          verdict=verdict, reasons=tuple(reasons), outputs=results, budget=spec.budget,
                          seconds=time.perf_counter() - started)

    missing = [name for name in spec.attributes if name not in case.attributes]
    if missing:
        raise ValueError(f"{spec.name}: the case lacks the attribute(s) {', '.join(missing)}")
    arguments = {**{n: p.view for n, p in outputs.items()}, **{n: p.view for n, p in inputs.items()},
                 **{name: case.attributes[name] for name in spec.attributes}}
    try:
        kernel(**arguments)
        synchronize(target)
    except KernelError as error:
        return finish(Verdict.FAIL, [f"kernel rejected a call inside its contract: {error}"])
    except Exception as error:  # a broken kernel must become a failed row, not a dead run
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return finish(Verdict.FAIL, [f"kernel raised {type(error).__name__}: {error} "
                                     f"({frame.filename}:{frame.lineno})"])

    masks = written_masks(spec, case, clean, target)
    reasons = contract_reasons(inputs, snapshots, outputs, masks)
    judged, results = judge_outputs(spec, case, clean, {n: p.view for n, p in outputs.items()}, masks, target)
    reasons += judged
    return finish(Verdict.FAIL if reasons else Verdict.PASS, reasons, tuple(results))
