"""The example adapter: descriptor_ops.c (a vendor-style C library: create a descriptor, query its
workspace, run on a stream, destroy) as a harness backend, `--backend suites.descriptor_library.backend`.

It shows each part of a plug-in: descriptors cached per call signature in `setup`'s state and
destroyed in `teardown`, one reusable Workspace, the library's "unsupported" status raised as
KernelUnsupportedError (f16/bf16, rows that are not dense) and dtype combinations outside the
operator's contract refused with KernelDTypeError before the library sees them."""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from operators.backends import (Backend, Device, Kernel, KernelDTypeError, KernelError, KernelUnsupportedError,
                                RunContext, Workspace)

SOURCE = Path(__file__).with_name("descriptor_ops.c")
OK, UNSUPPORTED = 0, 1
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def build_library() -> ctypes.CDLL:
    """Compiled with the system C compiler into a fresh temporary directory (a vendor ships a .so)."""
    output = Path(tempfile.mkdtemp(prefix="descriptor-ops-")) / "libdescriptor_ops.so"
    subprocess.run(["cc", "-O2", "-std=c11", "-shared", "-fPIC", "-o", str(output), str(SOURCE), "-lm"], check=True)
    library = ctypes.CDLL(str(output))
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    strides = ctypes.POINTER(ctypes.c_int64)
    for name, arguments in {
        "dl_create_swiglu": (ctypes.POINTER(pointer), ctypes.c_int, ctypes.c_int64, ctypes.c_int64, strides),
        "dl_create_rms_norm": (ctypes.POINTER(pointer), ctypes.c_int, ctypes.c_int64, ctypes.c_int64, strides,
                               ctypes.c_float),
        "dl_workspace_size": (pointer, ctypes.POINTER(size)),
        "dl_swiglu": (pointer, pointer, size, pointer, pointer, pointer, pointer),
        "dl_rms_norm": (pointer, pointer, size, pointer, pointer, pointer, pointer),
        "dl_destroy": (pointer,),
    }.items():
        function = getattr(library, name)
        function.argtypes, function.restype = arguments, ctypes.c_int
    return library


def rows_of(tensor: torch.Tensor) -> tuple[int, int, int] | None:
    """(rows, columns, row stride) when the leading dimensions collapse into evenly strided rows."""
    shape, strides = tensor.shape, tensor.stride()
    for d in range(len(shape) - 2):
        if shape[d + 1] > 1 and strides[d] != strides[d + 1] * shape[d + 1]:
            return None
    rows = 1
    for n in shape[:-1]:
        rows *= n
    return rows, shape[-1], strides[-2] if len(shape) > 1 else shape[-1]


@dataclass
class Library:
    device: Device
    library: ctypes.CDLL | None = None
    workspace: Workspace | None = None
    descriptors: dict = field(default_factory=dict)

    def setup(self, context: RunContext) -> None:
        self.library, self.workspace = build_library(), Workspace(context.device)

    def teardown(self) -> None:
        for descriptor in self.descriptors.values():
            self.library.dl_destroy(descriptor)
        self.descriptors.clear()

    def descriptor(self, operator: str, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *extra) -> ctypes.c_void_p:
        layout = [rows_of(t) for t in (out, a)]
        if None in layout or b.stride(-1) != 1 and b.shape[-1] > 1 or a.dtype not in DTYPE_CODES:
            raise KernelUnsupportedError(operator, "rows must collapse to evenly strided rows of f32/f16/bf16")
        (rows, cols, out_stride), (_, _, a_stride) = layout
        strides = (out_stride, out.stride(-1), a_stride, a.stride(-1), b.stride(0) if b.dim() > 1 else 0, b.stride(-1))
        key = (operator, a.dtype, rows, cols, strides, extra)
        if key not in self.descriptors:
            handle = ctypes.c_void_p()
            create = getattr(self.library, f"dl_create_{operator}")
            status = create(ctypes.byref(handle), DTYPE_CODES[a.dtype], rows, cols, (ctypes.c_int64 * 6)(*strides),
                            *(ctypes.c_float(value) for value in extra))
            if status == UNSUPPORTED:
                raise KernelUnsupportedError(operator, f"the library does not run {a.dtype} with strides {strides}")
            if status != OK:
                raise KernelError(operator, f"dl_create_{operator} returned status {status}")
            self.descriptors[key] = handle
        return self.descriptors[key]

    def run(self, operator: str, descriptor: ctypes.c_void_p, *tensors: torch.Tensor) -> None:
        size = ctypes.c_size_t()
        self.library.dl_workspace_size(descriptor, ctypes.byref(size))
        scratch = self.workspace.get(size.value)
        status = getattr(self.library, f"dl_{operator}")(descriptor, scratch.data_ptr(), size.value,
                                                         *(t.data_ptr() for t in tensors), None)
        if status != OK:
            raise KernelError(operator, f"dl_{operator} returned status {status}")

    def swiglu(self, *, out, gate, up) -> None:
        if len({out.dtype, gate.dtype, up.dtype}) > 1:
            raise KernelDTypeError("swiglu", "'gate', 'up' and 'out' must share one dtype")
        self.run("swiglu", self.descriptor("swiglu", out, gate, up), out, gate, up)

    def rms_norm(self, *, out, x, weight, eps) -> None:
        if out.dtype != x.dtype:
            raise KernelDTypeError("rms_norm", f"'out' {out.dtype} must have x's dtype {x.dtype}")
        if weight.dtype not in (x.dtype, torch.float32):
            raise KernelDTypeError("rms_norm", f"'weight' {weight.dtype} must be x's dtype or float32")
        if weight.dtype != x.dtype:
            raise KernelUnsupportedError("rms_norm", "a float32 weight with a half-precision x")
        self.run("rms_norm", self.descriptor("rms_norm", out, x, weight, eps), out, x, weight)


def backend(device: Device) -> Backend:
    if device is not Device.CPU:
        raise KernelUnsupportedError("swiglu", "descriptor_ops is a CPU library")
    library = Library(device)
    kernels = {op: Kernel(op, getattr(library, op), {"kind": "descriptor_ops", "library": SOURCE.name})
               for op in ("swiglu", "rms_norm")}
    return Backend(name="descriptor_ops", device=device, kernels=kernels, setup=library.setup,
                   teardown=library.teardown)
