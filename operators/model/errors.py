"""Errors of a model run: a checkpoint that cannot be used, and a kernel that failed inside the forward."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint directory cannot be used as a Qwen3 model; nothing was loaded."""


class KernelCallError(Exception):
    """A kernel of the backend under test raised (or tried to exit) during the model's forward: a
    failed run of that backend, not an error of the harness."""

    def __init__(self, operator: str, error: BaseException) -> None:
        detail = f"SystemExit({error.code!r})" if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
        super().__init__(f"{operator}: {detail}")
        self.operator = operator
