"""The Backend record and how a name becomes one: every backend, the built-in ones included, is a
module defining `backend(device) -> Backend`."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Callable, Iterator, Mapping, Sequence

from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.kernel_errors import NativeBuildError
from operators.core.registry import OPERATOR_NAMES
from operators.core.run_context import RunContext

BUILT_IN = {"native": "operators.backends.native", "torch": "operators.backends.torch_control"}


class BackendError(Exception):
    """A backend name that cannot be turned into a backend for the device."""


@dataclass(frozen=True)
class Backend:
    name: str
    device: Device
    kernels: Mapping[str, Kernel]
    description: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)  # e.g. native library path and hash
    source: str = ""  # the --backend name (built-in or module path) that loads exactly this backend
    version: str | None = None  # the version its module or distribution states
    setup: Callable[[RunContext], None] | None = None  # called once per process before the first kernel call
    teardown: Callable[[], None] | None = None  # called once after the last one
    settle: Callable[[], None] | None = None  # raises errors its library reports after a call (Kernel.settle)

    @property
    def loaded_as(self) -> str:
        """What `--backend` must say to load this backend again: a replay line's backend."""
        return self.source or self.name

    def kernel(self, operator: str) -> Kernel | None:
        return self.kernels.get(operator)

    def with_kernels(self, name: str, replacements: Mapping[str, Callable[..., None]],
                     implementation: str = "python") -> "Backend":
        """This backend with some operators replaced by plain callables (how self-tests plant bugs); they
        settle as the backend's own kernels do, since they may call them."""
        replaced = {op: Kernel(op, function, {"kind": implementation,
                                              "function": getattr(function, "__qualname__", repr(function))},
                               settle=self.settle)
                    for op, function in replacements.items()}
        return replace(self, name=name, kernels={**self.kernels, **replaced}, source="", version=None)

    def with_fallback(self, fallback: "Backend", operators: Sequence[str]) -> "Backend":
        """This backend, with `operators` (which it lacks) taken from `fallback`."""
        return replace(self, kernels={**self.kernels, **{op: fallback.kernels[op] for op in operators}})


@contextmanager
def started(backend: Backend, context: RunContext) -> Iterator[Backend]:
    """The backend between its setup and teardown hooks; a hook's own exception is a BackendError."""
    if backend.setup is not None:
        try:
            backend.setup(context)
        except Exception as error:  # the plug-in's own failure, whatever it is
            raise BackendError(f"backend '{backend.name}': setup raised {type(error).__name__}: {error}") from None
    try:
        yield backend
    finally:
        if backend.teardown is not None:
            backend.teardown()


def backend_module(name: str) -> ModuleType:
    """The module of backend `name`: a built-in one's, or `name` imported as a module path."""
    try:
        return importlib.import_module(BUILT_IN.get(name, name))
    except Exception as error:  # the module's own import error, whatever it is
        raise BackendError(f"backend module '{name}' could not be imported: {type(error).__name__}: {error}") from None


def load_backend(name: str, device: Device) -> Backend:
    """The Backend that `backend(device)` of backend `name`'s module returns, its kernels checked."""
    module = backend_module(name)
    factory = getattr(module, "backend", None)
    if not callable(factory):
        raise BackendError(f"backend module '{name}' defines no function backend(device) -> Backend")
    try:
        built = factory(device)
    except (BackendError, NativeBuildError):
        raise
    except Exception as error:  # the module's own failure, whatever it is
        raise BackendError(f"backend module '{name}': backend({device.value}) raised "
                           f"{type(error).__name__}: {error}") from None
    if not isinstance(built, Backend):
        raise BackendError(f"backend module '{name}': backend() returned {type(built).__name__}, not a Backend")
    check_kernels(f"backend module '{name}'", built)
    return replace(built, source=name, version=built.version or module_version(module))


def module_version(module: ModuleType) -> str | None:
    """The version of the package or distribution that provides `module`, if it states one."""
    top = module.__name__.split(".")[0]
    version = getattr(module, "__version__", None) or getattr(sys.modules.get(top), "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(top)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            return None
    return str(version)


def check_kernels(owner: str, backend: Backend) -> None:
    """Every entry of `kernels` an operator's Kernel wrapping a callable: a misspelt name or a
    non-callable is a broken plug-in, reported before any case runs."""
    if not isinstance(backend.kernels, Mapping):
        raise BackendError(f"{owner}: kernels must map operator names to Kernel objects, got "
                           f"{type(backend.kernels).__name__}")
    unknown = [str(op) for op in backend.kernels if op not in OPERATOR_NAMES]
    if unknown:
        raise BackendError(f"{owner}: kernel name(s) {', '.join(map(repr, unknown))} are not operators; expected "
                           f"among {', '.join(OPERATOR_NAMES)}")
    for op, kernel in backend.kernels.items():
        if not isinstance(kernel, Kernel):
            raise BackendError(f"{owner}: kernels['{op}'] is a {type(kernel).__name__}, not a Kernel "
                               f"(operators.core.kernel.Kernel('{op}', function))")
        if kernel.operator != op:
            raise BackendError(f"{owner}: kernels['{op}'] is a Kernel for '{kernel.operator}'")
        if not callable(kernel.function):
            raise BackendError(f"{owner}: the function of kernels['{op}'] is a {type(kernel.function).__name__}, "
                               "not callable")
