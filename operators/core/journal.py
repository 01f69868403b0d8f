"""The journal of a watched run: every finished step's result (a case, an operator's contract
checks), and each kernel call the watching parent saw end the process or overrun its time. A child
started again after such a call reads the journal, keeps what is done, turns the ended call into its
failed result, and goes on with the next step.

Records are pickles appended to one file that only this run's own processes write and read (a
temporary directory of the watching parent)."""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

JOURNAL_VARIABLE = "QWEN3_HARNESS_JOURNAL"
STOP_VARIABLE = "QWEN3_HARNESS_STOP"  # set: run no further step, report what the journal holds
STARTED_VARIABLE = "QWEN3_HARNESS_STARTED"  # time.time() when the first child of the run started

LENGTH_BYTES = 8  # each record: its length, then its pickle
T = TypeVar("T")


@dataclass(frozen=True)
class EndedCall:
    """A kernel call that never returned: what ended it ("crashed: signal SIGSEGV ...",
    "timed out after 120 s ...")."""
    reason: str


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, key: str, record: Any) -> None:
        data = pickle.dumps((key, record))
        with open(self.path, "ab") as file:
            file.write(len(data).to_bytes(LENGTH_BYTES, "little") + data)

    def read(self) -> dict[str, Any]:
        """Every complete record by key (a record cut short by the end of a process is dropped)."""
        records: dict[str, Any] = {}
        data = self.path.read_bytes() if self.path.exists() else b""
        start = 0
        while start + LENGTH_BYTES <= len(data):
            end = start + LENGTH_BYTES + int.from_bytes(data[start:start + LENGTH_BYTES], "little")
            if end > len(data):
                break
            key, record = pickle.loads(data[start + LENGTH_BYTES:end])
            records[key] = record
            start = end
        return records


@dataclass
class Steps:
    """The child's side: runs each step once over all restarts, telling the watching parent (status)
    which step runs; without a status and journal (a command called in-process) every step just runs."""
    status: Any = None  # operators.core.supervision.Status: its step(key, description) is told each step
    journal: Journal | None = None
    done: dict[str, Any] | None = None
    stop_reason: str | None = None
    not_run: int = 0
    started: float = field(default_factory=time.time)  # the run's start, over all its children

    @classmethod
    def from_environment(cls, status: Any) -> "Steps":
        path = os.environ.get(JOURNAL_VARIABLE)
        journal = Journal(path) if path else None
        started = os.environ.get(STARTED_VARIABLE)
        return cls(status=status, journal=journal, done=journal.read() if journal else {},
                   stop_reason=os.environ.get(STOP_VARIABLE) or None,
                   started=float(started) if started else time.time())

    def run(self, key: str, description: str, compute: Callable[[], T], ended: Callable[[str], T]) -> T | None:
        """The step's result: from the journal, from `ended(reason)` when its kernel call ended the
        process last time, None when stopping before it, else computed now."""
        record = (self.done or {}).get(key)
        if record is not None and not isinstance(record, EndedCall):
            return record
        if record is not None:
            result = ended(record.reason)
        elif self.stop_reason:
            self.not_run += 1
            return None
        else:
            if self.status is not None:
                self.status.step(key, description)
            result = compute()
        if self.journal is not None:
            self.journal.append(key, result)
        return result
