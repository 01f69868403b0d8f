"""Who sits on the panel: correct implementations (each must pass: a failure is a false alarm), the
kernels under test, and the planted wrong kernels (each must fail: a pass is a miss)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from operators.backends.backend import Backend, BackendError, load_backend
from operators.core.device import Device


class Role(Enum):
    CORRECT = "correct"  # production code nobody tuned to the harness: must pass every case
    TESTED = "tested"  # the kernels under test (the native library): reported as the run would
    WRONG = "wrong"  # one planted bug each: must fail


@dataclass(frozen=True)
class Member:
    name: str
    role: Role
    build: Callable[[Device], Backend]
    operators: tuple[str, ...] | None = None  # None: whatever the backend has


def _sdpa(name: str) -> Callable[[Device], Backend]:
    def build(device: Device) -> Backend:
        from operators.panel.sdpa import ON_DEVICE, sdpa_backend
        if name not in ON_DEVICE.get(device.torch_type, ()):
            raise BackendError(f"PyTorch has no SDPA {name} backend on {device.value}")
        return sdpa_backend(name, device)
    return build


def _module(name: str) -> Callable[[Device], Backend]:
    """A member that is a backend module of its own, so its replay lines load it with --backend."""
    return lambda device: load_backend(f"operators.panel.{name}", device)


CORRECT_MEMBERS = (
    Member("torch", Role.CORRECT, lambda device: load_backend("torch", device)),
    Member("sdpa-math", Role.CORRECT, _sdpa("math")),
    Member("sdpa-efficient", Role.CORRECT, _sdpa("efficient")),
    Member("sdpa-flash", Role.CORRECT, _sdpa("flash")),
    Member("sdpa-cudnn", Role.CORRECT, _sdpa("cudnn")),
    Member("compiled", Role.CORRECT, _module("compiled")),
    Member("blocked", Role.CORRECT, _module("blocked")),
    Member("liger", Role.CORRECT, _module("liger")),
)
WRONG_KERNELS_PACKAGE = "suites.wrong_kernels"


def wrong_members() -> tuple[Member, ...]:
    """The planted wrong kernels of the test suites (importable from a checkout's root)."""
    try:
        package = importlib.import_module(WRONG_KERNELS_PACKAGE)
    except ImportError:
        return ()
    members = []
    for module_name in package.WRONG_KERNEL_MODULES:
        module = importlib.import_module(f"{WRONG_KERNELS_PACKAGE}.{module_name}")

        def build(device: Device, module=module) -> Backend:
            devices = getattr(module, "DEVICES", None)
            if devices and device.value not in devices:
                raise BackendError(f"a kernel for {', '.join(devices)} only")
            return module.backend(device)
        members.append(Member(module_name, Role.WRONG, build, (module.WRONG_OPERATOR,)))
    return tuple(members)


def all_members() -> tuple[Member, ...]:
    return (*CORRECT_MEMBERS, Member("native", Role.TESTED, lambda device: load_backend("native", device)),
            *wrong_members())


@dataclass(frozen=True)
class Seated:
    member: Member
    backend: Backend | None
    reason: str = ""  # why the member is not available on this device

    def kernel(self, operator: str):
        if self.backend is None or (self.member.operators and operator not in self.member.operators):
            return None
        return self.backend.kernel(operator)


def seat(members: tuple[Member, ...], device: Device) -> list[Seated]:
    seated = []
    for member in members:
        try:
            seated.append(Seated(member, member.build(device)))
        except BackendError as error:
            seated.append(Seated(member, None, str(error)))
    return seated
