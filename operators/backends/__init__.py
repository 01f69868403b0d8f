"""Backends: named tables of kernels per device (native, the torch control, or a plug-in module).

What a plug-in needs, in one import: a module defining `backend(device) -> Backend` whose kernels
raise the typed errors below when they refuse a call (the built-in backends are such modules)."""

from operators.backends.backend import Backend, BackendError, backend_module, load_backend, started
from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.run_context import RunContext, Workspace
from operators.core.kernel_errors import (KernelDTypeError, KernelError, KernelLaunchError, KernelOutOfMemoryError,
                                     KernelShapeError, KernelStrideError, KernelUnsupportedError, KernelValueError)

__all__ = ["Backend", "BackendError", "Device", "Kernel", "KernelDTypeError", "KernelError", "KernelLaunchError",
           "KernelOutOfMemoryError", "KernelShapeError", "KernelStrideError", "KernelUnsupportedError",
           "KernelValueError", "RunContext", "Workspace", "backend_module", "load_backend", "started"]
