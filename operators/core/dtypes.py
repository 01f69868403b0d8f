"""The dtypes the harness speaks of, with the numbers the error budget needs."""

from __future__ import annotations

from enum import Enum

import torch


class DType(Enum):
    F32 = "float32"
    F16 = "float16"
    BF16 = "bfloat16"
    I32 = "int32"
    I64 = "int64"

    @property
    def torch(self) -> torch.dtype:
        return getattr(torch, self.value)

    @property
    def short(self) -> str:
        return {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "int32": "i32", "int64": "i64"}[self.value]

    @property
    def is_float(self) -> bool:
        return self in FLOAT_DTYPES

    @property
    def eps(self) -> float:
        """Machine epsilon: the distance from 1.0 to the next representable value."""
        return torch.finfo(self.torch).eps

    @property
    def mantissa_bits(self) -> int:
        """Significand precision including the implicit bit."""
        return {DType.F32: 24, DType.F16: 11, DType.BF16: 8}[self]

    @property
    def smallest_subnormal(self) -> float:
        return torch.finfo(self.torch).smallest_normal * self.eps

    @classmethod
    def parse(cls, text: str) -> "DType":
        for member in cls:
            if text in (member.value, member.short):
                return member
        raise ValueError(f"unknown dtype '{text}'; expected one of {', '.join(m.short for m in cls)}")

    @classmethod
    def of(cls, dtype: torch.dtype) -> "DType":
        for member in cls:
            if member.torch == dtype:
                return member
        raise ValueError(f"torch dtype {dtype} is not one the harness speaks of")


FLOAT_DTYPES = (DType.F32, DType.F16, DType.BF16)
INDEX_DTYPES = (DType.I32, DType.I64)
