"""A kernel as the harness sees it: a callable plus what it really is (for the report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Kernel:
    """`function(**outputs, **inputs, **attributes)` writes the outputs.

    `implementation` says what runs (e.g. the native symbol and library); `call_count`, when
    given, counts calls that reached the implementation, so the report proves it ran."""

    operator: str
    function: Callable[..., None]
    implementation: Mapping[str, Any] = field(default_factory=dict)
    call_count: Callable[[], int] | None = None

    def __call__(self, **arguments: Any) -> None:
        self.function(**arguments)
