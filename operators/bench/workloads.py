"""Every operator's workloads, sweep by sweep and in report order within a point of a sweep; the
largest point of a sweep is the one the speed targets speak of."""

from __future__ import annotations

from operators.bench.shapes import Shapes, Sweep, qwen3_bf16
from operators.bench.table import bench_entry
from operators.bench.workload import Workload
from operators.core.registry import OPERATOR_NAMES


def workloads(shapes: Shapes | None = None) -> list[Workload]:
    shapes = shapes or qwen3_bf16()
    entries = [bench_entry(name) for name in OPERATOR_NAMES]
    found: list[Workload] = []
    for sweep in Sweep:
        points = shapes.points(sweep)
        for point in points:
            for entry in (entry for entry in entries if entry.sweep is sweep):
                found += entry.build(shapes, point, point == points[-1])
    return found
