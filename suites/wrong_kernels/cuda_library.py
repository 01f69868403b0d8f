"""The wrong CUDA kernels of `cuda/`: built like the real library, swapped in for one operator."""

import dataclasses
from pathlib import Path

from operators.backends import Backend, BackendError, Device, load_backend
from operators.backends.native import current_stream, entry_points, load_library
from operators.native_library.build import KERNELS_DIR, nvidia_recipe

SOURCES = Path(__file__).resolve().parent / "cuda"


def wrong_cuda_recipe():
    real = nvidia_recipe()
    return dataclasses.replace(
        real, name="wrong-nvidia", source_dir=SOURCES,
        include_dirs=(*real.include_dirs, KERNELS_DIR / "nvidia"),
        extra_inputs=(*real.extra_inputs, *(KERNELS_DIR / "nvidia" / name for name in ("runtime.cu", "deferred_check.cu",
                                                                                       "deferred_check.cuh"))),
    )


def wrong_cuda_backend(name: str, operator: str, device: Device) -> Backend:
    if device is not Device.NVIDIA:
        raise BackendError(f"backend module '{name}' holds a CUDA kernel; it runs only with --device nvidia")
    library = load_library(wrong_cuda_recipe())
    symbol, adapter = entry_points(library, current_stream(device), device.torch_type)[operator]
    native = load_backend("native", device)
    return native.with_kernels(name, {operator: adapter}, implementation=f"native CUDA {symbol} from {library.path.name}")
