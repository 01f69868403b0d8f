"""AddressSanitizer's report of a watched child attached to the case it ended: the child writes its
report to a file of the run's scratch directory (ASAN_OPTIONS log_path, unless the user chose one),
the parent prints it and names its summary in the failed case."""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOG_NAME = "sanitizer"


def with_sanitizer_log(env: dict[str, str], scratch: Path) -> dict[str, str]:
    options = env.get("ASAN_OPTIONS", "")
    if "log_path=" in options:
        return env
    return {**env, "ASAN_OPTIONS": ":".join(filter(None, [options, f"log_path={scratch / LOG_NAME}"]))}


def take_sanitizer_report(scratch: Path) -> str | None:
    """The summary of the report a child left (the whole report goes to stderr), None without one."""
    logs = sorted(scratch.glob(f"{LOG_NAME}.*"), key=os.path.getmtime)
    if not logs:
        return None
    text = "".join(log.read_text(errors="replace") for log in logs)
    for log in logs:
        log.unlink()
    print(text, file=sys.stderr, end="" if text.endswith("\n") else "\n")
    lines = [line.strip() for line in text.splitlines()]
    summary = next((line[len("SUMMARY: "):] for line in lines if line.startswith("SUMMARY: ")), None)
    access = next((line.split(" at ")[0] for line in lines if line.startswith(("READ of", "WRITE of"))), None)
    if summary is None:
        return None
    return summary + (f" ({access})" if access else "")
