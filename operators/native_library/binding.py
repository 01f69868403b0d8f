"""ctypes binding of the native ABI (include/qwen3_kernels.h): tensors to q3_tensor, statuses to
typed exceptions. It does no maths: each call goes straight to one C entry point."""

from __future__ import annotations

import ctypes
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from operators.core import kernel_errors as errors
from operators.core.registry import get_spec

MAX_DIMS = 8
ABI_VERSION = 2

DTYPE_CODES = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.int32: 3,
    torch.int64: 4,
    torch.float64: 5,
}

STATUS_ERRORS = {
    1: errors.KernelDTypeError,
    2: errors.KernelShapeError,
    3: errors.KernelStrideError,
    4: errors.KernelValueError,
    5: errors.KernelValueError,
    6: errors.KernelValueError,
    7: errors.KernelUnsupportedError,
    8: errors.KernelLaunchError,
    9: errors.KernelOutOfMemoryError,
}


class CTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


ABSENT = CTensor(None, 0, 0)

# The C type of each attribute of the ABI (t = q3_tensor, d = double, l = int64_t, i = int). An entry
# point q3_<operator> takes the spec's outputs, inputs (tensors) and attributes in that order, then
# the stream (void *); suites/test_abi.py checks include/qwen3_kernels.h against it.
ATTRIBUTE_CODES = {"eps": "d", "theta": "d", "layout": "i", "scale": "d", "temperature": "d", "top_k": "l",
                   "top_p": "d", "norm_topk_prob": "i"}


@lru_cache(maxsize=None)
def signature(symbol: str) -> str:
    """The argument codes of entry point `symbol` ("q3_rope" -> "tttdi"), from its operator's spec."""
    spec = get_spec(symbol.removeprefix("q3_"))
    return "t" * (len(spec.outputs) + len(spec.inputs)) + "".join(ATTRIBUTE_CODES[a] for a in spec.attributes)


ARGUMENT_TYPES = {"t": CTensor, "d": ctypes.c_double, "l": ctypes.c_int64, "i": ctypes.c_int}


def describe(operator: str, name: str, tensor: torch.Tensor | None) -> CTensor:
    """The q3_tensor view of a torch tensor (no copy); None becomes an absent tensor."""
    if tensor is None:
        return ABSENT
    if not isinstance(tensor, torch.Tensor):
        raise errors.KernelValueError(operator, f"'{name}' must be a torch.Tensor, got {type(tensor).__name__}")
    code = DTYPE_CODES.get(tensor.dtype)
    if code is None:
        raise errors.KernelDTypeError(operator, f"tensor '{name}' has dtype {tensor.dtype}, which the ABI cannot carry")
    if tensor.dim() > MAX_DIMS:
        raise errors.KernelShapeError(operator, f"tensor '{name}' has {tensor.dim()} dims; at most {MAX_DIMS}")
    return c_tensor(tensor.data_ptr(), code, tuple(tensor.shape), tensor.stride())


@lru_cache(maxsize=4096)
def c_tensor(address: int, code: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> CTensor:
    """The q3_tensor of these fields: made once for the buffers a decode loop passes again and again
    (building the ctypes arrays is most of a small call's cost); its content is its key, so a reused
    entry is exact."""
    return CTensor(address or None, code, len(shape), (ctypes.c_int64 * MAX_DIMS)(*shape),
                   (ctypes.c_int64 * MAX_DIMS)(*strides))


@dataclass
class NativeLibrary:
    """A loaded native library: its path, build hash and how often each entry point ran."""

    path: Path
    build_hash: str
    handle: ctypes.CDLL = field(repr=False)
    calls: Counter = field(default_factory=Counter)

    @classmethod
    def load(cls, path: Path, build_hash: str) -> "NativeLibrary":
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as error:
            raise errors.NativeBuildError(f"cannot load native library {path}: {error}") from error
        handle.q3_abi_version.restype = ctypes.c_int
        handle.q3_status_string.restype = ctypes.c_char_p
        handle.q3_status_string.argtypes = [ctypes.c_int]
        handle.q3_last_error.restype = ctypes.c_char_p
        handle.q3_take_deferred_error.restype = ctypes.c_int
        handle.q3_take_deferred_error.argtypes = [ctypes.c_void_p]
        version = handle.q3_abi_version()
        if version != ABI_VERSION:
            raise errors.NativeBuildError(f"{path} speaks ABI {version}; this binding speaks {ABI_VERSION}")
        return cls(path=path, build_hash=build_hash, handle=handle)

    def call(self, symbol: str, operator: str, *arguments) -> None:
        """Call one entry point; raise the typed error its status names."""
        self.entry(symbol, operator)(*arguments)

    def entry(self, symbol: str, operator: str) -> Callable[..., None]:
        """Entry point `symbol` as a function of its C arguments that counts its calls and raises the
        typed error its status names for `operator`; an adapter makes it once,
        so a decode loop's call does no lookups. The symbol is looked up at the first call: a library of
        a few kernels (the wrong CUDA kernels of the suites) gives adapters for every operator."""
        calls, raise_status = self.calls, self.raise_status
        function = None

        def call(*arguments) -> None:
            nonlocal function
            if function is None:
                function = self.function(symbol, operator)
            status = function(*arguments)
            calls[symbol] += 1
            if status:
                raise_status(status, operator)
        return call

    def function(self, symbol: str, operator: str):
        """The ctypes function of `symbol`, typed from its operator's spec."""
        try:
            function = getattr(self.handle, symbol)
        except AttributeError:
            raise errors.KernelUnsupportedError(operator, f"{self.path.name} has no entry point {symbol}") from None
        if function.argtypes is None:
            function.argtypes = [ARGUMENT_TYPES[code] for code in signature(symbol)] + [ctypes.c_void_p]
            function.restype = ctypes.c_int
        return function

    def take_deferred_error(self, stream) -> None:
        """Wait for `stream`; raise the typed error of a call whose index check failed on the device
        since the last take (the message names that call's operator)."""
        self.raise_status(self.handle.q3_take_deferred_error(stream), None)

    def raise_status(self, status: int, operator: str | None) -> None:
        if status == 0:
            return
        message = self.handle.q3_last_error().decode(errors="replace")
        if not message:
            message = self.handle.q3_status_string(status).decode()
        if operator is None:
            operator = message.split(":", 1)[0]
        raise STATUS_ERRORS.get(status, errors.KernelError)(operator, message)
