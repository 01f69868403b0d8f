"""The block and tile boundaries of common kernels, and which of them a case set reaches.

Kernels change strategy at a few lengths: a warp's or a block's share of a row (256), a row that
no longer fits one block's registers or shared memory (1024, 4096), the chunks of a split-KV
decode. A bug on one side of such a length is invisible on the other, so every case set covers
each class of length its operator can draw (`draw_cases` adds a case for a class the sample missed),
and the report says which classes and regimes the cases covered."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

THRESHOLDS = (256, 1024, 4096)


def length_class(length: int) -> str:
    """'<=256', '257-1024', '1025-4096' or '>4096'."""
    low = 1
    for threshold in THRESHOLDS:
        if length <= threshold:
            return f"<={threshold}" if low == 1 else f"{low}-{threshold}"
        low = threshold + 1
    return f">{THRESHOLDS[-1]}"


def labels(lengths: Mapping[str, int]) -> tuple[str, ...]:
    """A case's boundary labels from its lengths by dimension name ("row", "keys"); token counts
    are labelled by parity too (odd counts break kernels that pair or vectorise tokens)."""
    result = [f"{name} {length_class(length)}" for name, length in lengths.items()]
    result += [f"{name} {'odd' if length % 2 else 'even'}" for name, length in lengths.items() if name == "tokens"]
    return tuple(result)


def coverage(label_sets: Iterable[tuple[str, ...]]) -> dict[str, int]:
    """How many cases hit each label, in label order."""
    return dict(sorted(Counter(label for labels_ in label_sets for label in labels_).items()))
