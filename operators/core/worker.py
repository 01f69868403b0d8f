"""Cases checked in a worker process (the pytest plugin's isolation): a kernel that ends the worker
or does not return in time fails its own case, and the next case starts a fresh worker. Only the
case and its result cross between the processes; inputs, reference and verdict are made in the
worker, exactly as in-process."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Callable

from operators.core.case import Case
from operators.core.device import Device
from operators.core.result import CaseResult
from operators.core.run_context import RunContext, current_stream
from operators.core.guard_pages import describe_fault, report_faults_to
from operators.core.status import CALL, ENDED, RETURNED, TENSORS, fault_address, parse_tensors, watch_kernel
from operators.core.supervision import describe_end

START_SECONDS = 600.0  # a worker that has not answered by then (imports, library build) is broken
RESULT = "result"


def serve(connection, device_value: str, backend_name: str, kernel_timeout: float, guard_pages: bool,
          fault_path: str) -> None:
    """The worker's loop: a case in, its CaseResult out; the kernel's calls announced on the way (and on
    the CPU a memory fault's address written to `fault_path`)."""
    from operators.backends import load_backend, started
    from operators.core.checker import check_case
    from operators.core.registry import get_spec
    from operators.rope import MAX_POSITION

    device = Device(device_value)
    backend = load_backend(backend_name, device)
    if device is Device.CPU:
        report_faults_to(fault_path)

    def tell(event: str, detail: str) -> None:
        connection.send((event, detail))

    with started(backend, RunContext(device, tuple(backend.kernels), MAX_POSITION, current_stream(device))):
        while True:
            try:
                case = connection.recv()
            except EOFError:
                return
            kernel = watch_kernel(backend.kernel(case.operator), kernel_timeout, tell)
            connection.send((RESULT, check_case(get_spec(case.operator), case, kernel, device, backend.loaded_as,
                                                guard_pages)))


class WorkerError(RuntimeError):
    """The worker ended outside a kernel call (a harness or environment failure, not the kernel's)."""


class CaseWorker:
    def __init__(self, device: Device, backend_name: str, kernel_timeout: float, guard_pages: bool = False) -> None:
        self.device, self.backend_name, self.kernel_timeout = device, backend_name, kernel_timeout
        self.guard_pages = guard_pages
        self.process = None
        self.connection = None
        self.ended: dict[str, str] = {}  # case JSON -> why its call ended (a retried case is not rerun)
        self.fault_path = Path(tempfile.mkdtemp(prefix="qwen3-harness-worker-")) / "faults"

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=serve, daemon=True, name="qwen3-harness-case-worker",
                                       args=(theirs, self.device.value, self.backend_name, self.kernel_timeout,
                                             self.guard_pages, str(self.fault_path)))
        self.process.start()
        theirs.close()  # the worker's end: only the worker holds it, so its death reads as EOF here

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.connection.close()
        self.process = self.connection = None

    def check(self, case: Case, ended_result: Callable[[str], CaseResult]) -> CaseResult:
        """The case's result from the worker, or `ended_result(reason)` when its kernel call ended the
        worker or ran past its time limit."""
        key = case.compact_json()
        if key in self.ended:
            return ended_result(self.ended[key])
        if self.process is None or not self.process.is_alive():
            self.stop()
            self.start()
        self.connection.send(case)
        deadline, in_call, limit, tensors = time.monotonic() + START_SECONDS, False, 0.0, {}
        while True:
            if not self.connection.poll(max(0.0, deadline - time.monotonic())):
                if in_call:
                    reason = f"timed out: the call did not return within {limit:.0f} s (--kernel-timeout scales this limit)"
                    break
                self.stop()
                raise WorkerError(f"the case worker did not answer within {START_SECONDS:.0f} s")
            try:
                event, detail = self.connection.recv()
            except EOFError:
                self.process.join()
                if not in_call:
                    code = self.process.exitcode
                    self.stop()
                    raise WorkerError(f"the case worker ended ({describe_end(code)}) outside any kernel call") from None
                reason = f"crashed: the process ended ({describe_end(self.process.exitcode)}) inside the kernel call"
                address = fault_address(self.fault_path)
                if address is not None:
                    reason += f", which {describe_fault(address, tensors)}"
                    self.fault_path.unlink()
                break
            if event == RESULT:
                return detail
            if event == ENDED:
                reason = detail
                break
            if event not in (CALL, RETURNED, TENSORS):
                raise WorkerError(f"the case worker sent an unknown message {event!r}")
            if event == TENSORS:
                tensors = parse_tensors(detail)
            else:
                in_call = event == CALL
                limit = float(detail) if in_call else 0.0
                deadline = time.monotonic() + (limit if in_call else START_SECONDS)
        self.stop()
        self.ended[key] = reason
        return ended_result(reason)
