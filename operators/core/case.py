"""A case: everything needed to rebuild one kernel call exactly (tensors, attributes, values, seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from operators.core.dtypes import DType


class Layout(Enum):
    """How a tensor sits in memory, inside a larger guarded buffer (see placement.py)."""

    CONTIGUOUS = "contiguous"  # starts 64 bytes into its buffer: aligned for vector loads
    OFFSET = "offset"  # contiguous, but starting one element later: misaligned for vector loads
    PADDED = "padded"  # rows padded: the second-to-last stride exceeds the last dim
    REVERSED = "reversed"  # strides in reversed dim order: the last dim is not unit-stride


class Regime(Enum):
    """The distribution input values are drawn from."""

    NORMAL = "normal"  # signed standard normal
    HEAVY_TAILED = "heavy_tailed"  # normal times a log-normal scale: a few huge values
    OUTLIER_CHANNELS = "outlier_channels"  # a few channels (last dim) 30-300x larger, as trained LLMs have
    NEAR_LIMIT = "near_limit"  # magnitudes near the largest finite value the dtype's sums allow
    TINY_RMS = "tiny_rms"  # rows whose RMS is near sqrt(eps): where an eps in the wrong place shows
    CONSTANT_ROWS = "constant_rows"  # rows of one repeated value: ties, zero variance
    MASKED = "masked"  # a fifth of the entries -inf, some rows entirely: attention masks
    LARGE_SCORES = "large_scores"  # magnitudes of 30-100: where a softmax without max subtraction overflows


@dataclass(frozen=True)
class TensorCase:
    shape: tuple[int, ...]
    dtype: DType
    layout: Layout = Layout.CONTIGUOUS

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype.value, "layout": self.layout.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TensorCase":
        shape = data["shape"]
        if not isinstance(shape, (list, tuple)) or not all(type(size) is int for size in shape):
            raise ValueError(f"shape must be a list of integers, got {shape!r}")
        return cls(tuple(shape), DType(data["dtype"]), Layout(data.get("layout", "contiguous")))


def _tensor_from_json(name: str, data: Mapping[str, Any]) -> TensorCase:
    try:
        return TensorCase.from_json(data)
    except ValueError as error:
        raise ValueError(f"tensor '{name}': {error}") from None


@dataclass(frozen=True)
class Case:
    operator: str
    inputs: Mapping[str, TensorCase]
    outputs: Mapping[str, TensorCase]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    regime: Regime = Regime.NORMAL
    seed: int = 0
    note: str = ""  # why an edge case is there (e.g. "Qwen3-8B hidden size")

    @property
    def dtype(self) -> DType:
        """The working dtype: that of the first float output, else of the first float input."""
        tensors = list(self.outputs.values()) + list(self.inputs.values())
        return next((t.dtype for t in tensors if t.dtype.is_float), tensors[0].dtype)

    def dtype_label(self) -> str:
        """The dtype combination, e.g. 'x=bf16 weight=f32 out=bf16'."""
        tensors = {**self.inputs, **self.outputs}
        return " ".join(f"{name}={t.dtype.short}" for name, t in tensors.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "inputs": {name: t.to_json() for name, t in self.inputs.items()},
            "outputs": {name: t.to_json() for name, t in self.outputs.items()},
            "attributes": dict(self.attributes),
            "regime": self.regime.value,
            "seed": self.seed,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Case":
        return cls(
            operator=data["operator"],
            inputs={n: _tensor_from_json(n, t) for n, t in data["inputs"].items()},
            outputs={n: _tensor_from_json(n, t) for n, t in data["outputs"].items()},
            attributes=dict(data.get("attributes", {})),
            regime=Regime(data.get("regime", "normal")),
            seed=int(data.get("seed", 0)),
            note=data.get("note", ""),
        )

    def compact_json(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=False)
