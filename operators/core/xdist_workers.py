"""`pytest suites/ -n N` (pytest-xdist): each worker process on a GPU of its own, and the session's
case results gathered by the controlling process, which alone writes the report.

Nothing here imports xdist: a worker is recognised by the `workerinput` xdist gives its config."""

from __future__ import annotations

import os
import pickle
from typing import Any

from operators.core.device import visible_gpu

RESULTS_KEY = "qwen3_harness_results"  # pickled CaseResults in a worker's workeroutput
LEFT_OUT_KEY = "qwen3_harness_self_tests_left_out"


def worker_index(config: Any) -> int | None:
    """0, 1, ... in a worker process (its id is gw0, gw1, ...); None in the controlling process or
    without xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    return int(str(workerinput.get("workerid", "gw0")).removeprefix("gw"))


def is_controller(config: Any) -> bool:
    """The process that collects the workers' results (or the only process)."""
    return worker_index(config) is None


def pin_worker_to_gpu(index: int) -> str | None:
    """Worker `index` takes visible GPU index % count: the current CUDA device of this process, and
    CUDA_VISIBLE_DEVICES for the processes its tests start (where it can name it). None when there
    is one GPU or none, or the variable cannot name it."""
    import torch

    count = torch.cuda.device_count()
    if count < 2:
        return None
    chosen = index % count
    physical = visible_gpu(chosen, count)
    torch.cuda.set_device(chosen)
    if physical is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = physical
    return physical


def share_the_cpus(config: Any) -> int | None:
    """A worker's share of the host's cores for its intra-op threads (PyTorch's and the C kernels'
    OpenMP, one runtime): N workers of all the cores each would oversubscribe them, and spinning
    OpenMP threads then wait on descheduled ones. None outside a worker."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    import torch

    threads = max(1, (os.cpu_count() or 1) // max(1, int(workerinput.get("workercount", 1))))
    torch.set_num_threads(threads)
    return threads


def send_results(config: Any, results: list, self_tests_left_out: int) -> None:
    """In a worker, at its session's end: what the controller's report needs."""
    config.workeroutput[RESULTS_KEY] = pickle.dumps(results)
    config.workeroutput[LEFT_OUT_KEY] = self_tests_left_out


def received_results(workeroutput: dict) -> tuple[list, int]:
    """In the controller, when a worker finished: its results and its count of left-out self-tests."""
    data = workeroutput.get(RESULTS_KEY)
    return (pickle.loads(data) if data else []), int(workeroutput.get(LEFT_OUT_KEY, 0))
