"""The status file between a watched child and its parent: the child writes a line before each step
(`case KEY<TAB>what`), around each kernel call (`tensors` with the call's CPU buffers, `call
LIMIT_SECONDS`, `returned`), `ended REASON` when the device failed after a call, `fault ADDRESS`
from the fault handler, and `finished` when its verdict is out; the parent follows it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from operators.core.exits import EXIT_FAIL
from operators.core.guard_pages import storage_range
from operators.core.kernel import Kernel

STATUS_VARIABLE = "QWEN3_HARNESS_STATUS"
FINISHED, CASE, CALL, RETURNED, ENDED = "finished", "case", "call", "returned", "ended"
TENSORS, FAULT = "tensors", "fault"  # the call's CPU buffers (name:start:end); a fault's address (hex)
DEFAULT_KERNEL_TIMEOUT = 120.0  # seconds per call, and as many again per GiB of the call's tensors
GIB = 1 << 30


def call_time_limit(arguments: dict, base: float) -> float:
    """`base` seconds plus `base` per GiB of the call's tensors (a kernel's time grows with its data)."""
    size = sum(value.nbytes for value in arguments.values() if isinstance(value, torch.Tensor))
    return base * (1.0 + size / GIB)


class Status:
    """The child's side: appends status lines, each reaching the file before the next step runs."""

    def __init__(self, path: str, kernel_timeout: float = DEFAULT_KERNEL_TIMEOUT) -> None:
        self.path = path
        self.kernel_timeout = kernel_timeout

    @classmethod
    def from_environment(cls) -> "Status | None":
        path = os.environ.get(STATUS_VARIABLE)
        return cls(path) if path else None

    def write(self, event: str, detail: str = "") -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(f"{event} {detail}".rstrip() + "\n")

    def step(self, key: str, description: str) -> None:
        self.write(CASE, f"{key}\t{description}")

    def watch(self, kernel: Kernel) -> Kernel:
        return watch_kernel(kernel, self.kernel_timeout, self.write)


def watch_kernel(kernel: Kernel, kernel_timeout: float, tell: Callable[[str, str], None]) -> Kernel:
    """The kernel, telling a watching process `call LIMIT` before each call and `returned` after it."""
    def function(**arguments) -> None:
        tell(TENSORS, " ".join(f"{name}:{start}:{end}" for name, value in arguments.items()
                               if isinstance(value, torch.Tensor) and value.device.type == "cpu"
                               for start, end in [storage_range(value)]))
        tell(CALL, f"{call_time_limit(arguments, kernel_timeout):.0f}")
        kernel.function(**arguments)
        finish_on_device(arguments, tell)
        tell(RETURNED, "")
    return replace(kernel, function=function)


def finish_on_device(arguments: dict, tell: Callable[[str, str], None]) -> None:
    """A GPU kernel's work ends inside the watched call (a hang times out as this call), and a fault
    it left behind (an illegal address: the device context cannot be used again) ends this process,
    telling the watcher why, which goes on in a fresh one."""
    devices = {v.device for v in arguments.values() if isinstance(v, torch.Tensor) and v.device.type == "cuda"}
    try:
        for device in devices:
            torch.cuda.synchronize(device)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        tell(ENDED, f"crashed: the device failed after the kernel call ({first}); a new process goes on")
        os._exit(EXIT_FAIL)


def watched(status: Status | None, kernel: Kernel | None) -> Kernel | None:
    return kernel if status is None or kernel is None else status.watch(kernel)


def parse_tensors(detail: str) -> dict[str, tuple[int, int]]:
    """A `tensors` line's buffers: name -> (first byte, end)."""
    return {name: (int(start), int(end)) for name, start, end in (item.split(":") for item in detail.split())}


def fault_address(path: Path) -> int | None:
    """The address of the last `fault` line the fault handler wrote to `path`, if any."""
    lines = path.read_text().splitlines() if path.exists() else []
    faults = [line.split(" ", 1)[1] for line in lines if line.startswith(FAULT + " ")]
    return int(faults[-1], 16) if faults else None


@dataclass
class StatusReader:
    """The parent's side: follows the child's status file as it grows."""
    path: Path
    offset: int = 0
    partial: str = ""
    last: str = ""
    step: str = ""  # the last `case` line's detail
    call_limit: float | None = None  # set while a kernel call is running
    call_seen: float = 0.0
    tensors: dict[str, tuple[int, int]] = field(default_factory=dict)  # the last call's CPU buffers
    fault: int | None = None  # the address of a memory fault inside the running call

    def update(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as file:
            file.seek(self.offset)
            text = file.read()
            self.offset = file.tell()
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.last = line
            event, _, detail = line.partition(" ")
            if event == CASE:
                self.step = detail
            if event == TENSORS:
                self.tensors = parse_tensors(detail)
            if event == FAULT:
                self.fault = int(detail, 16)
            if event == CALL:
                self.call_limit, self.call_seen, self.fault = float(detail or "inf"), time.monotonic(), None
            elif event in (RETURNED, CASE, FINISHED, ENDED):
                self.call_limit = None

    def overdue(self) -> bool:
        return self.call_limit is not None and time.monotonic() - self.call_seen > self.call_limit
