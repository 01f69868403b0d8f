"""The benchmark's JSON document and its tables (terminal and markdown)."""

from __future__ import annotations

from typing import Any, Mapping

from tabulate import tabulate

from operators.bench.measure import Measurement
from operators.bench.timing import Ceilings
from reports.schemas import header

def native_cell(m: Measurement) -> str:
    """The native time and the run's noise on it, e.g. "25.1 ±0.4%"."""
    if not m.native_ms:
        return "-"
    timing = m.timings.get("native")
    return f"{m.native_ms * 1e3:.1f}" + (f" ±{timing.spread / 2:.1%}" if timing else "")


def table_rows(results: list[Measurement], ceilings: Ceilings) -> list[list]:
    rows = []
    for m in results:
        f = m.figures(ceilings)
        best = m.best_pytorch()
        target, verdict = m.target_verdict(ceilings)
        rows.append([m.workload.name, m.status if m.status != "timed" else "",
                     native_cell(m),
                     f"{best[1] * 1e3:.1f} ({best[0]})" if best else "-",
                     f"{m.speedup():.2f}x" if m.speedup() else "-",
                     f"{f['gb_per_s']:.0f}" if f else "-", f"{f['of_copy_bandwidth']:.0%}" if f else "-",
                     f"{f['tflop_per_s']:.1f} ({f['of_matmul_rate']:.0%})" if f.get("tflop_per_s") else "-",
                     verdict])
    return rows


HEADERS = ["workload (bf16)", "status", "native us", "PyTorch best us", "speed vs PyTorch", "GB/s", "% copy",
           "TFLOP/s (% matmul)", "target"]


def card_name(device: object) -> str:
    return device.get("name", str(device)) if isinstance(device, dict) else str(device)


def benchmark_document(results: list[Measurement], ceilings: Ceilings, environment: Mapping[str, Any],
                       command: str, date: str) -> dict[str, Any]:
    return {**header("benchmark"), "date": date, "command": command, "environment": dict(environment),
            "ceilings": ceilings.to_json(), "results": [m.to_json(ceilings) for m in results]}


def benchmark_markdown(results: list[Measurement], ceilings: Ceilings, environment: Mapping[str, Any],
                       command: str, date: str) -> str:
    return (f"# Benchmark: native kernels vs PyTorch\n\ncard: {card_name(environment['device'])}  \ndate: {date}  \n"
            f"command: `{command}`  \ntorch {environment['torch']}, harness {environment['harness']['git_sha']}  \n"
            f"measured in the same run: copy {ceilings.copy_gb_per_s:.0f} GB/s, bf16 matmul "
            f"{ceilings.matmul_tflop_per_s:.0f} TFLOP/s; every time the median per call over batches of calls, "
            f"launched on the stream or replayed as a CUDA graph, whichever is faster; ± half the interquartile range\n\n"
            + tabulate(table_rows(results, ceilings), headers=HEADERS, tablefmt="github") + "\n")
