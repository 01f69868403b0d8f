"""The native backend: each operator calls one entry point of the C (or CUDA) library."""

from __future__ import annotations

import ctypes
import functools

import torch

from operators.backends.backend import Backend, BackendError
from operators.core.device import Device
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelUnsupportedError, KernelValueError
from operators.native_library.binding import NativeLibrary, signature
from operators.native_library.binding import describe as describe_tensor
from operators.native_library.build import BuildRecipe, build, cpu_recipe, nvidia_recipe
from operators.core.registry import OPERATOR_NAMES, get_spec

ROPE_LAYOUTS = {"neox": 0, "gptj": 1}


def load_library(recipe: BuildRecipe) -> NativeLibrary:
    return NativeLibrary.load(build(recipe), recipe.build_hash())


@functools.cache
def cpu_library() -> NativeLibrary:
    return load_library(cpu_recipe())


@functools.cache
def nvidia_library() -> NativeLibrary:
    torch.cuda.init()
    # cuBLAS is loaded by the CUDA library at run time from what PyTorch already holds in the process.
    torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")
    return load_library(nvidia_recipe())


def current_stream(device: Device):
    """The stream argument of every entry point: NULL on the CPU, torch's current stream on CUDA."""
    if device is Device.CPU:
        return lambda: None
    return lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


# Attributes the ABI carries as an enumeration: name -> {Python value: C value}.
ENUMERATIONS = {"layout": ROPE_LAYOUTS}
C_ATTRIBUTES = {"d": ctypes.c_double, "l": ctypes.c_int64, "i": ctypes.c_int}


def entry_points(library: NativeLibrary, stream, device_type: str | None) -> dict[str, tuple[str, object]]:
    """operator -> (C symbol, Python adapter taking the kernel's keyword arguments), one per spec: its
    outputs and inputs as q3_tensor views, its attributes in their C types (binding.signature), then
    the stream. A tensor on a device other than `device_type` is refused before the library could
    dereference it (None: the caller hands the library such tensors on purpose)."""
    def describe(operator, name, tensor):
        if device_type is not None and isinstance(tensor, torch.Tensor) and tensor.device.type != device_type:
            raise KernelUnsupportedError(operator, f"tensor '{name}' is on {tensor.device}; the native library of "
                                                   f"this backend takes {device_type} tensors")
        return describe_tensor(operator, name, tensor)

    def attribute(operator, name, code, value):
        if name in ENUMERATIONS:
            if value not in ENUMERATIONS[name]:
                raise KernelValueError(operator, f"unknown {name} '{value}'; expected one of {sorted(ENUMERATIONS[name])}")
            value = ENUMERATIONS[name][value]
        return C_ATTRIBUTES[code](int(value) if isinstance(value, bool) else value)

    def adapter(operator):
        spec, symbol = get_spec(operator), f"q3_{operator}"
        tensors, codes = (*spec.outputs, *spec.inputs), signature(f"q3_{operator}")
        required = {*tensors, *spec.attributes} - set(spec.optional_inputs)

        def kernel(**arguments):
            missing, unknown = required - set(arguments), set(arguments) - set(tensors) - set(spec.attributes)
            if missing or unknown:
                raise TypeError(f"{operator}() takes {', '.join((*tensors, *spec.attributes))}; "
                                f"missing {sorted(missing)}, unexpected {sorted(unknown)}")
            values = [describe(operator, name, arguments.get(name)) for name in tensors]
            values += [attribute(operator, name, code, arguments[name])
                       for name, code in zip(spec.attributes, codes[len(tensors):])]
            library.call(symbol, operator, *values, stream())

        kernel.__name__ = operator
        return symbol, kernel

    return {operator: adapter(operator) for operator in OPERATOR_NAMES}


LIBRARIES = {Device.CPU: cpu_library, Device.NVIDIA: nvidia_library}
LANGUAGES = {Device.CPU: "C", Device.NVIDIA: "CUDA"}


def backend(device: Device) -> Backend:
    if device not in LIBRARIES:
        raise BackendError(f"the native backend has no kernels for device '{device.value}' "
                           f"(native libraries exist for {', '.join(d.value for d in LIBRARIES)})")
    library = LIBRARIES[device]()
    stream = current_stream(device)
    settle = (lambda: library.take_deferred_error(stream())) if device is Device.NVIDIA else None
    kernels = {}
    for op, (symbol, adapter) in entry_points(library, stream, device.torch_type).items():
        implementation = {"kind": "native", "symbol": symbol, "library": str(library.path),
                          "build_hash": library.build_hash}
        kernels[op] = Kernel(op, adapter, implementation, functools.partial(library.calls.__getitem__, symbol), settle)
    return Backend(name="native", device=device, kernels=kernels,
                   description=f"{LANGUAGES[device]} kernels from {library.path.name}",
                   environment={"library": str(library.path), "build_hash": library.build_hash}, settle=settle)
