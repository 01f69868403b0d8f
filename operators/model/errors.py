"""Errors of a model run: a checkpoint that cannot be used, and a kernel that failed inside the forward."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint directory cannot be used as a Qwen3 model; nothing was loaded."""


class KernelCallError(Exception):
    """A kernel of the backend under test tried to exit the process during the model's forward: a
    failed run of that backend, not an error of the harness (a kernel that refuses a call raises a
    KernelError of its own; any other exception is a bug, reported as one)."""

    def __init__(self, operator: str, error: SystemExit) -> None:
        super().__init__(f"{operator}: SystemExit({error.code!r})")
        self.operator = operator
