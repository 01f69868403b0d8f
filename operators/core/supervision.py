"""A command run in a child process and watched: a kernel that ends the process (C `exit(0)`, a
segfault, an abort) makes a failed run that names the kernel's case, never a silent exit 0.

The child writes one status line before each case and around each kernel call to the file named by
QWEN3_HARNESS_STATUS, and `finished` when its verdict is out; the parent reads the file when the
child ends without it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

from operators.core.exits import EXIT_FAIL, EXIT_INTERNAL, EXIT_USAGE, run_guarded
from operators.core.kernel import Kernel

STATUS_VARIABLE = "QWEN3_HARNESS_STATUS"
FINISHED, CASE, CALL, RETURNED = "finished", "case", "call", "returned"


class Status:
    """The child's side: appends status lines, each reaching the file before the next step runs."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def from_environment(cls) -> "Status | None":
        path = os.environ.get(STATUS_VARIABLE)
        return cls(path) if path else None

    def write(self, event: str, detail: str = "") -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(f"{event} {detail}".rstrip() + "\n")

    def watch(self, kernel: Kernel) -> Kernel:
        def function(**arguments) -> None:
            self.write(CALL)
            kernel.function(**arguments)
            self.write(RETURNED)
        return replace(kernel, function=function)


def watched(status: Status | None, kernel: Kernel | None) -> Kernel | None:
    return kernel if status is None or kernel is None else status.watch(kernel)


def watched_command(module: str, main: Callable[[], int]) -> int:
    """The entry of `python -m module`: in the parent, the watched child's exit code; in the child
    (the status file named in its environment), `main()`'s, then `finished`. Exit codes by cause
    either way (operators/core/exits.py)."""
    status = Status.from_environment()
    if status is None:
        return run_guarded(module, lambda: supervise(module, sys.argv[1:]))
    try:
        code = run_guarded(module, main)
    except SystemExit as stop:  # argparse's --help (0) and its usage errors (2): the command's own ends
        code = exit_code_of(stop)
    status.write(FINISHED)
    return code


def exit_code_of(stop: SystemExit) -> int:
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return EXIT_USAGE


def describe_end(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def supervise(module: str, argv: list[str]) -> int:
    """`python -m module argv` in a child process: its exit code when it finished, else 1 when a
    kernel call never returned (the kernel ended the process) and 3 when the end came elsewhere."""
    with tempfile.TemporaryDirectory(prefix="qwen3-harness-") as scratch:
        status = Path(scratch) / "status"
        completed = subprocess.run([sys.executable, "-m", module, *argv],
                                   env={**os.environ, STATUS_VARIABLE: str(status)}, check=False)
        lines = status.read_text(encoding="utf-8").splitlines() if status.exists() else []
    if lines and lines[-1] == FINISHED:
        return completed.returncode
    cases = [line[len(CASE) + 1:] for line in lines if line.startswith(CASE + " ")]
    case = cases[-1] if cases else "(before the first case)"
    end = describe_end(completed.returncode)
    if lines and lines[-1] == CALL:
        print(f"error: {module}: a kernel ended the process ({end}) inside its call, so no report was written; "
              f"the case: {case}", file=sys.stderr)
        return EXIT_FAIL
    print(f"internal error of the harness in {module}: the process ended ({end}) outside any kernel call, "
          f"after: {case}", file=sys.stderr)
    return EXIT_INTERNAL
