"""Errors of a model run: a checkpoint that cannot be used, a kernel that failed inside the forward, and
weights that changed during the run."""

from __future__ import annotations

from operators.core.kernel import kernel_exception


class CheckpointError(Exception):
    """A checkpoint directory cannot be used as a Qwen3 model; nothing was loaded."""


class KernelCallError(Exception):
    """A kernel of the backend under test raised an exception of its own, or tried to exit the
    process, during the model's forward: a failed run of that backend, as the same exception fails a
    case of operators.run (a kernel that refuses a call raises a KernelError, which the run reports as
    it is; an exception of the harness outside a kernel call is a bug, reported as one)."""

    def __init__(self, operator: str, error: BaseException) -> None:
        super().__init__(f"{operator}: {kernel_exception(error)}")
        self.operator = operator


class WeightsWrittenError(Exception):
    """A weight the backend's kernels are given changed during the run: a kernel wrote into an input."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the model's weight {name!r} changed during the run: a kernel of the backend wrote into "
                         "its weights")
        self.name = name
