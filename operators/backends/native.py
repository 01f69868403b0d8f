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


def on_device_check(device_type: str | None):
    """A predicate: is this tensor on `device_type` (None: every tensor is)? `is_cpu`/`is_cuda` cost a
    fifth of building `tensor.device`, which a decode-size call would pay per tensor."""
    if device_type is None:
        return lambda tensor: True
    if device_type == "cpu":
        return lambda tensor: tensor.is_cpu
    if device_type == "cuda":
        return lambda tensor: tensor.is_cuda
    return lambda tensor: tensor.device.type == device_type


def entry_points(library: NativeLibrary, stream, device_type: str | None) -> dict[str, tuple[str, object]]:
    """operator -> (C symbol, Python adapter taking the kernel's keyword arguments), one per spec: its
    outputs and inputs as q3_tensor views, its attributes in their C types (binding.signature), then
    the stream. A tensor on a device other than `device_type` is refused before the library could
    dereference it (None: the caller hands the library such tensors on purpose)."""
    on_device = on_device_check(device_type)

    def attribute(operator, name, code, value):
        if name in ENUMERATIONS:
            if value not in ENUMERATIONS[name]:
                raise KernelValueError(operator, f"unknown {name} '{value}'; expected one of {sorted(ENUMERATIONS[name])}")
            value = ENUMERATIONS[name][value]
        return C_ATTRIBUTES[code](int(value) if isinstance(value, bool) else value)

    def adapter(operator):
        spec, symbol = get_spec(operator), f"q3_{operator}"
        tensors, codes = (*spec.outputs, *spec.inputs), signature(f"q3_{operator}")
        attributes = tuple(zip(spec.attributes, codes[len(tensors):]))
        allowed = frozenset((*tensors, *spec.attributes))
        required = allowed - set(spec.optional_inputs)
        entry = library.entry(symbol, operator)

        def kernel(**arguments):
            names = arguments.keys()
            if not (names >= required and names <= allowed):
                raise TypeError(f"{operator}() takes {', '.join((*tensors, *spec.attributes))}; "
                                f"missing {sorted(required - names)}, unexpected {sorted(names - allowed)}")
            values = []
            for name in tensors:
                tensor = arguments.get(name)
                if isinstance(tensor, torch.Tensor) and not on_device(tensor):
                    raise KernelUnsupportedError(operator, f"tensor '{name}' is on {tensor.device}; the native "
                                                           f"library of this backend takes {device_type} tensors")
                values.append(describe_tensor(operator, name, tensor))
            for name, code in attributes:
                values.append(attribute(operator, name, code, arguments[name]))
            entry(*values, stream())

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
