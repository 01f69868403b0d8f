"""The device and backend a command checks: the --device and --backend options the commands share,
and how their names become a Device and a Backend. Every failure is a UsageError (exit 2,
operators/core/exits.py); the pytest plugin turns it into pytest's own."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence

from operators.backends import Backend, BackendError, backend_module, load_backend
from operators.core.device import Device
from operators.core.exits import UsageError
from operators.core.kernel_errors import NativeBuildError
from operators.core.registry import OPERATOR_NAMES
from operators.core.status import DEFAULT_KERNEL_TIMEOUT

BACKEND_HELP = "'native' (the C/CUDA kernels), 'torch' (control) or an importable module defining backend(device)"


def device_help(default: Device) -> str:
    return f"one of {', '.join(d.value for d in Device)} (default {default.value})"


def add_guard_options(add: Callable[..., Any]) -> None:
    """The options on how kernels are called and judged that operators.run and the pytest plugin share;
    `add` is argparse's add_argument or pytest's addoption."""
    add("--kernel-timeout", type=float, default=DEFAULT_KERNEL_TIMEOUT, metavar="SECONDS",
        help="a watched kernel call may take this many seconds plus as many per GiB of its tensors; one that "
             "takes longer fails its case (default %(default).0f)")
    add("--guard-pages", action="store_true",
        help="CPU: place every tensor between inaccessible pages, so a kernel that reads past a buffer faults "
             "and its case fails")
    add("--require-support", action="store_true",
        help="fail when a kernel refuses a case as unsupported (KernelUnsupportedError); by default such cases "
             "are counted, neither passed nor failed")


def add_device_option(parser: argparse.ArgumentParser, default: Device = Device.CPU) -> None:
    parser.add_argument("--device", default=default.value, help=device_help(default))


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="native", help=BACKEND_HELP)


def parse_device(name: str) -> Device:
    try:
        return Device.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_available(device: Device) -> None:
    availability = device.availability()
    if not availability.available:
        raise UsageError(f"device '{device.value}' is not available: {availability.reason}")


def check_importable(backend: str) -> None:
    """The backend's module imports (a plug-in's own import error shows before anything runs)."""
    try:
        backend_module(backend)
    except BackendError as error:
        raise UsageError(str(error)) from None


def select_backend(name: str, device: Device) -> Backend:
    """The backend `name` on `device`, once the device is known to be there."""
    check_available(device)
    try:
        return load_backend(name, device)
    except (BackendError, NativeBuildError) as error:
        raise UsageError(str(error)) from None


def check_something_is_checked(backend: Backend, operators: Sequence[str] = OPERATOR_NAMES,
                               each_one: bool = False) -> None:
    """A run that would check nothing is never a PASS: a backend with none of `operators`, or (with
    `each_one`, operators the user named) without one of them, is a usage error."""
    lacking = [op for op in operators if backend.kernel(op) is None]
    if len(lacking) < len(operators) and not (each_one and lacking):
        return
    which = "any operator" if len(lacking) == len(OPERATOR_NAMES) else ", ".join(lacking)
    has = ", ".join(sorted(backend.kernels)) or "none"
    raise UsageError(f"backend '{backend.name}' has no kernel for {which}; nothing would check "
                     f"{'them' if len(lacking) > 1 else 'it'} (the backend's kernels: {has}; operators are named "
                     f"{', '.join(OPERATOR_NAMES)})")
