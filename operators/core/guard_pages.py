"""Guard pages: a CPU tensor's buffer placed so that its last byte ends a page and an inaccessible
page follows it (another precedes its first page), so a kernel that reads past the buffer faults at
once instead of reading other data unnoticed. With the fault reporter installed, the fault's address
reaches the watching parent, which names the tensor (operators/core/supervision.py)."""

from __future__ import annotations

import ctypes
import mmap
import os

import torch

PAGE = mmap.PAGESIZE
PROT_NONE = 0
ALIGNMENT = 64  # the buffer's length is rounded up to this, so its start keeps 64-byte alignment


def guarded_empty(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised 1-D tensor of at least `numel` elements (rounded up to 64 bytes) whose
    storage ends where an inaccessible page begins; one more precedes its first page."""
    element = torch.empty(0, dtype=dtype).element_size()
    nbytes = max(-(-numel * element // ALIGNMENT) * ALIGNMENT, ALIGNMENT)
    pages = -(-nbytes // PAGE)
    region = mmap.mmap(-1, (pages + 2) * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    exported = ctypes.c_char.from_buffer(region)
    base = ctypes.addressof(exported)
    del exported  # the export would keep the mapping from being released with the tensor
    libc = ctypes.CDLL(None, use_errno=True)
    for page in (base, base + (pages + 1) * PAGE):
        if libc.mprotect(ctypes.c_void_p(page), ctypes.c_size_t(PAGE), PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), f"mprotect of a guard page: {os.strerror(ctypes.get_errno())}")
    start = (pages + 1) * PAGE - nbytes
    return torch.frombuffer(region, dtype=torch.uint8, count=nbytes, offset=start).view(dtype)


def storage_range(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def describe_fault(address: int, ranges: dict[str, tuple[int, int]]) -> str:
    """Where a fault's address lies relative to the call's CPU tensors' buffers."""
    for name, (start, end) in ranges.items():
        if end <= address < end + PAGE:
            return f"read or wrote outside '{name}': {address - end} bytes past the end of its buffer"
        if start - PAGE <= address < start:
            return f"read or wrote outside '{name}': {start - address} bytes before the start of its buffer"
        if start <= address < end:
            return f"faulted inside the buffer of '{name}'"
    return f"faulted at address {address:#x}, not next to any tensor of the call"


def report_faults_to(path: str) -> bool:
    """Install the native fault reporter (kernels/host/faults.c) writing `fault ADDRESS` lines to the
    file at `path`; False when the CPU library cannot be built here (faults then go unnamed)."""
    from operators.native_library.build import build, cpu_recipe
    try:
        library = ctypes.CDLL(str(build(cpu_recipe())))
    except Exception:  # noqa: BLE001 - no C compiler: the run goes on, faults are reported by signal only
        return False
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return library.q3_report_faults(descriptor) == 0
