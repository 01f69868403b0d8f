"""Typed errors raised by kernels when they reject a call; third-party backends raise them too."""

from __future__ import annotations


class KernelError(Exception):
    """A kernel rejected its arguments or failed; nothing was written. Raised as
    `KernelDTypeError("rms_norm", "x and weight differ")`; with one argument it is the message alone
    (the operator is then known from the call that raised it)."""

    def __init__(self, operator: str, message: str | None = None) -> None:
        if message is None:
            operator, message = "", operator
        super().__init__(f"{operator}: {message}" if operator and not message.startswith(f"{operator}:") else message)
        self.operator = operator


class KernelDTypeError(KernelError, TypeError):
    """A tensor's dtype, or a combination of dtypes, is outside the operator's contract."""


class KernelShapeError(KernelError, ValueError):
    """A tensor's rank or sizes do not fit the operator."""


class KernelStrideError(KernelError, ValueError):
    """A tensor's strides are negative or make two output elements share memory."""


class KernelValueError(KernelError, ValueError):
    """An input value is out of range (a token id outside the vocabulary) or an attribute is bad."""


class KernelUnsupportedError(KernelError, NotImplementedError):
    """The implementation does not support this call on this device."""


class KernelLaunchError(KernelError, RuntimeError):
    """The device failed to run the kernel (launch failure, out of memory)."""


class KernelOutOfMemoryError(KernelLaunchError):
    """The kernel could not get the device (or host) memory it needs: the machine's limit, not a
    wrong result. Commands stop with exit 2 on it, as on torch.OutOfMemoryError."""


class NativeBuildError(RuntimeError):
    """The native library could not be compiled or loaded."""
