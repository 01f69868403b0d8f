"""A kernel as the harness sees it: a callable plus what it really is (for the report)."""

from __future__ import annotations

import traceback

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Kernel:
    """`function(**outputs, **inputs, **attributes)` writes the outputs.

    `implementation` says what runs (e.g. the native symbol and library); `call_count`, when
    given, counts calls that reached the implementation, so the report proves it ran; `settle`,
    when given, waits for the device work of the calls so far and raises an error the
    implementation found after a call returned (the CUDA library checks index values on the
    device without waiting for it)."""

    operator: str
    function: Callable[..., None]
    implementation: Mapping[str, Any] = field(default_factory=dict)
    call_count: Callable[[], int] | None = None
    settle: Callable[[], None] | None = None

    def __call__(self, **arguments: Any) -> None:
        self.function(**arguments)

    def settled_call(self, **arguments: Any) -> None:
        """The call, then its settling: every error it causes is raised here."""
        self.function(**arguments)
        if self.settle is not None:
            self.settle()


def kernel_exception(error: BaseException) -> str:
    """What a kernel's own exception says, with the line that raised it: the text of its failed case
    (operators.run) or failed run (operators.integrate)."""
    if isinstance(error, SystemExit):
        return f"kernel tried to exit the process (SystemExit({error.code!r}))"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"kernel raised {type(error).__name__}: {error}{where}"
