"""The native backend: each operator calls one entry point of the C (or CUDA) library."""

from __future__ import annotations

import ctypes
import functools

from kernels.binding import NativeLibrary, describe
from kernels.build import build, cpu_recipe
from operators.backends.backend import Backend, BackendError
from operators.device import Device
from operators.kernel import Kernel

ROPE_LAYOUTS = {"neox": 0, "gptj": 1}


@functools.cache
def cpu_library() -> NativeLibrary:
    recipe = cpu_recipe()
    return NativeLibrary.load(build(recipe), recipe.build_hash())


def entry_points(library: NativeLibrary) -> dict[str, tuple[str, object]]:
    """operator -> (C symbol, Python adapter taking the kernel's keyword arguments)."""
    call = library.call

    def embedding(*, out, ids, weight):
        call("q3_embedding", "embedding", describe("embedding", "out", out), describe("embedding", "ids", ids),
             describe("embedding", "weight", weight), None)

    def rms_norm(*, out, x, weight, eps):
        call("q3_rms_norm", "rms_norm", describe("rms_norm", "out", out), describe("rms_norm", "x", x),
             describe("rms_norm", "weight", weight), ctypes.c_double(eps), None)

    def add_rms_norm(*, out, sum, x, residual, weight, eps):
        op = "add_rms_norm"
        call("q3_add_rms_norm", op, describe(op, "out", out), describe(op, "sum", sum), describe(op, "x", x),
             describe(op, "residual", residual), describe(op, "weight", weight), ctypes.c_double(eps), None)

    def linear(*, out, x, weight, bias=None):
        call("q3_linear", "linear", describe("linear", "out", out), describe("linear", "x", x),
             describe("linear", "weight", weight), describe("linear", "bias", bias), None)

    def rope(*, out, x, positions, theta, layout):
        if layout not in ROPE_LAYOUTS:
            from kernels.errors import KernelValueError
            raise KernelValueError("rope", f"unknown layout '{layout}'; expected one of {sorted(ROPE_LAYOUTS)}")
        call("q3_rope", "rope", describe("rope", "out", out), describe("rope", "x", x),
             describe("rope", "positions", positions), ctypes.c_double(theta),
             ctypes.c_int(ROPE_LAYOUTS[layout]), None)

    def swiglu(*, out, gate, up):
        call("q3_swiglu", "swiglu", describe("swiglu", "out", out), describe("swiglu", "gate", gate),
             describe("swiglu", "up", up), None)

    adapters = {"embedding": embedding, "rms_norm": rms_norm, "add_rms_norm": add_rms_norm, "linear": linear,
                "rope": rope, "swiglu": swiglu}
    return {op: (f"q3_{op}", adapter) for op, adapter in adapters.items()}


def native_backend(device: Device) -> Backend:
    if device is not Device.CPU:
        raise BackendError(f"the native backend has no kernels for device '{device.value}' yet "
                           "(only the CPU library exists)")
    library = cpu_library()
    kernels = {}
    for op, (symbol, adapter) in entry_points(library).items():
        implementation = {"kind": "native", "symbol": symbol, "library": str(library.path),
                          "build_hash": library.build_hash}
        kernels[op] = Kernel(op, adapter, implementation, functools.partial(library.calls.__getitem__, symbol))
    return Backend(name="native", device=device, kernels=kernels,
                   description=f"C kernels from {library.path.name}",
                   environment={"library": str(library.path), "build_hash": library.build_hash})
