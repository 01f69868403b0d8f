"""Device timing, the same for native kernels and PyTorch candidates: batches of calls timed by CUDA
events, once captured in a CUDA graph and replayed (no host launch cost or jitter between calls)
and once launched on the stream; the faster of the two counts (a graph may turn a copy into a
copy-engine transfer, slower than the copy kernel; a call that waits for the device, e.g. to read
indices back, cannot be captured and is timed on the stream only). Inputs stay where the previous
call left them (no cache flush), for every candidate alike. Also the two ceilings, measured the
same way."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

COPY_BYTES = 1 << 30  # a 1 GiB copy: far beyond any cache
MATMUL_SIZE = 8192
BATCH_MS = 1.0  # a batch (one graph replay) lasts about this long
TOTAL_MS = 150.0  # repetitions: batches for about this long
MIN_REPETITIONS, MAX_REPETITIONS, MAX_BATCH = 15, 200, 500

CUDA_GRAPH, STREAM = "cuda graph", "stream"


@dataclass(frozen=True)
class Timing:
    median_ms: float  # one call: the median over repetitions of a batch's time over its calls
    spread: float  # (p75 - p25) / median over the repetitions: the run's own noise
    method: str  # CUDA_GRAPH or STREAM
    calls: int  # calls per batch
    repetitions: int

    def to_json(self) -> dict:
        return {"method": self.method, "spread": self.spread, "calls": self.calls, "repetitions": self.repetitions}


def batch_ms(run_batch: Callable[[], None], repetitions: int) -> list[float]:
    """The time of each of `repetitions` batches, by CUDA events."""
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repetitions)]
    for start, end in events:
        start.record()
        run_batch()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def captured(function: Callable[[], None], calls: int) -> torch.cuda.CUDAGraph | None:
    """`calls` calls of `function` in a CUDA graph; None when the calls cannot be captured. The
    capture runs on a stream of its own, always ended, and the caller's stream is current again
    afterwards whatever the calls did."""
    graph, side, caller = torch.cuda.CUDAGraph(), torch.cuda.Stream(), torch.cuda.current_stream()
    side.wait_stream(caller)
    failed = False
    with torch.cuda.stream(side):
        try:
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                for _ in range(calls):
                    function()
            finally:
                graph.capture_end()
        except Exception:  # a call that synchronises or reads back cannot be captured: it is timed on the stream
            failed = True
    torch.cuda.synchronize()
    return None if failed else graph


def summarised(times_ms: list[float], method: str, calls: int) -> Timing:
    times = sorted(times_ms)
    median = statistics.median(times)
    quartiles = statistics.quantiles(times, n=4)
    return Timing(median_ms=median, spread=(quartiles[2] - quartiles[0]) / median if median > 0 else 0.0,
                  method=method, calls=calls, repetitions=len(times))


def measure(function: Callable[[], None]) -> Timing:
    """`function` (a call that writes its outputs and may be repeated) timed on the current device."""
    for _ in range(3):
        function()
    torch.cuda.synchronize()
    single = statistics.median(batch_ms(function, 5))
    calls = max(1, min(MAX_BATCH, math.ceil(BATCH_MS / max(single, 1e-4))))
    repetitions = max(MIN_REPETITIONS, min(MAX_REPETITIONS, math.ceil(TOTAL_MS / max(single * calls, 1e-3))))

    def launches():
        for _ in range(calls):
            function()

    timings = [summarised([t / calls for t in batch_ms(launches, repetitions)], STREAM, calls)]
    graph = captured(function, calls)
    if graph is not None:
        graph.replay()
        timings.append(summarised([t / calls for t in batch_ms(graph.replay, repetitions)], CUDA_GRAPH, calls))
        del graph
    return min(timings, key=lambda t: t.median_ms)


@dataclass(frozen=True)
class Ceilings:
    copy_gb_per_s: float  # bytes read + bytes written of a device-to-device copy
    matmul_tflop_per_s: float  # bf16 F.linear, 8192^3

    def to_json(self) -> dict:
        return {"copy_gb_per_s": self.copy_gb_per_s, "matmul_tflop_per_s": self.matmul_tflop_per_s,
                "copy_bytes": COPY_BYTES, "matmul_size": MATMUL_SIZE}


def copy_ms(device: torch.device) -> float:
    source = torch.randn(COPY_BYTES // 2, device=device, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    return measure(lambda: target.copy_(source)).median_ms


def matmul_ms(device: torch.device) -> float:
    x = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    w = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    return measure(lambda: F.linear(x, w)).median_ms


def measure_ceilings(device: torch.device) -> Ceilings:
    copy, matmul = copy_ms(device), matmul_ms(device)
    return Ceilings(copy_gb_per_s=2 * COPY_BYTES / copy / 1e6, matmul_tflop_per_s=2 * MATMUL_SIZE ** 3 / matmul / 1e9)
