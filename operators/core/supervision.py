"""A command run in a child process and watched: a kernel that ends the process (C `exit(0)`, a
segfault, an abort) or does not return in time never ends the command silently.

The child tells the parent what it does through a status file (operators/core/status.py). When a
kernel call does not return, the parent records it in the run's journal
(operators/core/journal.py) and, for a command that resumes (operators.run), starts the child again:
it reports that step as failed and goes on. SIGTERM or Ctrl-C stops the child and has it write the
report of the steps done, marked incomplete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from operators.core.exits import EXIT_FAIL, EXIT_INTERNAL, EXIT_USAGE, run_guarded
from operators.core.guard_pages import describe_fault
from operators.core.journal import JOURNAL_VARIABLE, STARTED_VARIABLE, STOP_VARIABLE, EndedCall, Journal
from operators.core.sanitizer import take_sanitizer_report, with_sanitizer_log
from operators.core.status import CALL, ENDED, FAULT, FINISHED, STATUS_VARIABLE, Status, StatusReader

MAX_ENDED_CALLS = 20  # then the run stops and reports what it has
POLL_SECONDS = 0.2


def watched_command(module: str, main: Callable[[], int], resumes: bool = False) -> int:
    """The entry of `python -m module`: in the parent, the watched child's exit code; in the child
    (the status file named in its environment), `main()`'s, then `finished`. Exit codes by cause
    either way (operators/core/exits.py). `resumes`: the command reads the journal, so a child
    started again goes on after the step whose kernel call ended its predecessor."""
    status = Status.from_environment()
    if status is None:
        return run_guarded(module, lambda: supervise(module, sys.argv[1:], resumes))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the watching parent handles Ctrl-C
    try:
        code = run_guarded(module, main)
    except SystemExit as stop:  # argparse's --help (0) and its usage errors (2): the command's own ends
        code = exit_code_of(stop)
    finally:
        signal.signal(signal.SIGINT, previous)
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


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def run_child(module: str, argv: list[str], env: dict[str, str], status: StatusReader) -> tuple[int, bool]:
    """The child's exit code, and whether it was killed for a kernel call past its time limit."""
    child = subprocess.Popen([sys.executable, "-m", module, *argv], env=env)
    try:
        while True:
            try:
                return child.wait(timeout=POLL_SECONDS), False
            except subprocess.TimeoutExpired:
                status.update()
                if status.overdue():
                    child.kill()
                    return child.wait(), True
    except BaseException:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def supervise(module: str, argv: list[str], resumes: bool = False) -> int:
    """`python -m module argv` in a child process: its exit code when it finished; a kernel call that
    ended it or ran past its limit: started again after that step when the command resumes (until
    MAX_ENDED_CALLS, then a last child reports what is done), else exit 1; an end elsewhere: exit 3."""
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with tempfile.TemporaryDirectory(prefix="qwen3-harness-") as scratch:
            journal = Journal(Path(scratch) / "journal")
            env = with_sanitizer_log({**os.environ, JOURNAL_VARIABLE: str(journal.path),
                                      STARTED_VARIABLE: repr(time.time())}, Path(scratch))
            for attempt in range(MAX_ENDED_CALLS + 2):
                status = StatusReader(Path(scratch) / f"status-{attempt}")
                env[STATUS_VARIABLE] = str(status.path)
                try:
                    returncode, timed_out = run_child(module, argv, env, status)
                except (Interrupted, KeyboardInterrupt) as stop:
                    signum = signal.Signals(stop.signum if isinstance(stop, Interrupted) else signal.SIGINT)
                    if resumes:
                        report_interrupted(module, argv, env, Path(scratch), signum)
                    return 128 + signum.value
                status.update()
                if status.last == FINISHED:
                    return returncode
                ended = ended_call(status, returncode, timed_out)
                sanitizer = take_sanitizer_report(Path(scratch))
                if ended is not None and sanitizer is not None:
                    ended = EndedCall(f"{ended.reason}: {sanitizer}")
                key, _, case = status.step.partition("\t")
                if ended is None or not resumes or not key:
                    return report_end(module, ended, case or status.step, returncode)
                print(f"{module}: case {key}: the kernel {ended.reason}; going on in a new process",
                      file=sys.stderr, flush=True)
                journal.append(key, ended)
                if attempt + 1 >= MAX_ENDED_CALLS:
                    env[STOP_VARIABLE] = f"stopped after {MAX_ENDED_CALLS} kernel calls that did not return"
            return EXIT_INTERNAL
    finally:
        signal.signal(signal.SIGTERM, previous)


def ended_call(status: StatusReader, returncode: int, timed_out: bool) -> EndedCall | None:
    """What ended the child inside a kernel call; None when it ended outside one."""
    if timed_out:
        return EndedCall(f"timed out: the call did not return within {status.call_limit:.0f} s "
                         f"(--kernel-timeout scales this limit)")
    event, _, detail = status.last.partition(" ")
    if event == ENDED:
        return EndedCall(detail)
    if event == FAULT and status.call_limit is not None:
        return EndedCall(f"crashed: the process ended ({describe_end(returncode)}) inside the kernel call, which "
                         f"{describe_fault(status.fault, status.tensors)}")
    if event == CALL:
        return EndedCall(f"crashed: the process ended ({describe_end(returncode)}) inside the kernel call")
    return None


def report_end(module: str, ended: EndedCall | None, case: str, returncode: int) -> int:
    case = case or "(before the first case)"
    if ended is not None:
        print(f"error: {module}: the kernel {ended.reason}, so no report was written; the case: {case}",
              file=sys.stderr)
        return EXIT_FAIL
    print(f"internal error of the harness in {module}: the process ended ({describe_end(returncode)}) outside "
          f"any kernel call, after: {case}", file=sys.stderr)
    return EXIT_INTERNAL


def report_interrupted(module: str, argv: list[str], env: dict[str, str], scratch: Path,
                       signum: signal.Signals) -> None:
    """A last child that runs nothing: it writes the report of the steps the journal holds, marked
    incomplete (the command then exits 128 + the signal's number, as a shell reports a command it
    stopped)."""
    print(f"{module}: {signum.name}: writing the report of the finished cases, marked incomplete",
          file=sys.stderr, flush=True)
    env = {**env, STOP_VARIABLE: f"interrupted by {signum.name}",
           STATUS_VARIABLE: str(scratch / "status-interrupted")}
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    subprocess.run([sys.executable, "-m", module, *argv], env=env, check=False)
