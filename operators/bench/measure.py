"""One workload: accuracy first, then the native kernel and the PyTorch candidates timed on the same
inputs, then the native output judged again against the float64 reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from operators.backends.backend import Backend
from operators.bench.table import baselines, bench_entry
from operators.bench.timing import Ceilings, Timing
from operators.bench.timing import measure as timed
from operators.bench.workload import Workload, full_bytes
from operators.core.checker import build_inputs, check_case, judge_outputs, prepare_inputs
from operators.core.device import Device
from operators.core.kernel_errors import KernelError
from operators.core.registry import get_spec


@dataclass
class Measurement:
    workload: Workload
    status: str  # "timed", "accuracy failed", "recheck failed"
    reasons: list[str] = field(default_factory=list)
    native_ms: float | None = None
    pytorch_ms: dict[str, float] = field(default_factory=dict)
    bytes: float = 0.0
    timings: dict[str, Timing] = field(default_factory=dict)  # "native" and each candidate: how, how noisy

    def time(self, name: str, function) -> float:
        """Times `function` as candidate `name` ("native" or a PyTorch one); its median in ms."""
        self.timings[name] = timed(function)
        return self.timings[name].median_ms

    def best_pytorch(self) -> tuple[str, float] | None:
        return min(self.pytorch_ms.items(), key=lambda item: item[1]) if self.pytorch_ms else None

    def speedup(self) -> float | None:
        best = self.best_pytorch()
        return best[1] / self.native_ms if best and self.native_ms else None

    def figures(self, ceilings: Ceilings) -> dict[str, Any]:
        if self.native_ms is None:
            return {}
        seconds = self.native_ms / 1e3
        gb = self.bytes / seconds / 1e9
        figures = {"gb_per_s": gb, "of_copy_bandwidth": gb / ceilings.copy_gb_per_s}
        if self.workload.flops:
            tflops = self.workload.flops / seconds / 1e12
            figures.update(tflop_per_s=tflops, of_matmul_rate=tflops / ceilings.matmul_tflop_per_s)
        return figures

    def target_verdict(self, ceilings: Ceilings) -> tuple[str, str]:
        """(target text, 'met' or 'missed: ...') or ('', '') when no target applies."""
        target = bench_entry(self.workload.operator).target(self.workload.large)
        if target is None or self.native_ms is None:
            return "", ""
        misses = []
        speedup = self.speedup()
        if target.vs_pytorch is not None and speedup is not None and speedup < target.vs_pytorch:
            misses.append(f"{speedup:.2f}x PyTorch vs {target.vs_pytorch:g}x")
        share = self.figures(ceilings)["of_copy_bandwidth"]
        if target.of_copy_bandwidth is not None and share < target.of_copy_bandwidth:
            misses.append(f"{share:.0%} of copy bandwidth vs {target.of_copy_bandwidth:.0%}")
        return target.describe(), "met" if not misses else "missed: " + "; ".join(misses)

    def to_json(self, ceilings: Ceilings) -> dict[str, Any]:
        target, verdict = self.target_verdict(ceilings)
        best = self.best_pytorch()
        return {"workload": self.workload.name, "operator": self.workload.operator, "case": self.workload.case.to_json(),
                "status": self.status, "reasons": self.reasons, "native_us": _us(self.native_ms),
                "pytorch_us": {k: _us(v) for k, v in self.pytorch_ms.items()},
                "best_pytorch": best[0] if best else None, "speedup_vs_best_pytorch": self.speedup(),
                "bytes": self.bytes, "flops": self.workload.flops, **self.figures(ceilings),
                "target": target, "target_verdict": verdict,
                "timings": {name: t.to_json() for name, t in self.timings.items()}}


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy viewed as bytes (NaN-safe equality)."""
    return tensor.contiguous().view(torch.uint8).clone()


def _us(ms: float | None) -> float | None:
    return None if ms is None else ms * 1e3


def measure(workload: Workload, native: Backend, device: Device, compile_baselines: bool) -> Measurement:
    spec, case, target = get_spec(workload.operator), workload.case, device.torch_device()
    kernel = native.kernel(workload.operator)
    accuracy = check_case(spec, case, kernel, device, native.name)
    if not accuracy.passed:
        return Measurement(workload, "accuracy failed", list(accuracy.reasons))
    inputs = {name: placed.view for name, placed in build_inputs(spec, case, target).items()}
    if workload.prepare:
        inputs = workload.prepare(inputs)
    # Poisoned outputs (NaN, or -1 for indices) and a copy of the inputs: the judgement after timing
    # sees an element the timed calls left unwritten and an input they changed.
    outputs = {name: torch.full(case.outputs[name].shape, math.nan if case.outputs[name].dtype.is_float else -1,
                                dtype=case.outputs[name].dtype.torch, device=target) for name in spec.outputs}
    snapshots = {name: bits(tensor) for name, tensor in inputs.items()}
    attributes = {name: case.attributes[name] for name in spec.attributes}
    result = Measurement(workload, "timed", bytes=(workload.bytes_of or full_bytes)(inputs, outputs))
    result.native_ms = result.time("native", lambda: kernel(**outputs, **inputs, **attributes))
    reasons = []
    try:
        if kernel.settle is not None:
            kernel.settle()  # an error the timed calls reported on the device
    except KernelError as error:
        reasons.append(f"the timed calls were rejected: {error}")
    reasons += [f"input '{name}' was modified by the timed calls" for name, tensor in inputs.items()
                if not torch.equal(bits(tensor), snapshots[name])]
    judged, _ = judge_outputs(prepare_inputs(spec, case, device, inputs), outputs)
    reasons += judged
    if reasons:
        result.status, result.reasons = "recheck failed", reasons
        return result
    compiled = compile_baselines and bench_entry(workload.operator).compiled and workload.large
    for name, function in baselines(workload.operator, {**inputs, **outputs}, case.attributes).items():
        result.pytorch_ms[name] = result.time(name, function)
        if compiled:
            result.pytorch_ms[f"{name}+compile"] = result.time(f"{name}+compile", torch.compile(function, dynamic=False))
    return result
