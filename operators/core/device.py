"""Devices the harness can target, each mapped to its torch device type and an availability probe."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from enum import Enum
from typing import Callable, TypeVar

import torch

from operators.core.exits import is_out_of_memory

Result = TypeVar("Result")


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


class Device(Enum):
    CPU = "cpu"
    NVIDIA = "nvidia"
    ASCEND = "ascend"
    CAMBRICON = "cambricon"
    METAX = "metax"
    MOORE = "moore"
    ILUVATAR = "iluvatar"
    KUNLUN = "kunlun"
    HYGON = "hygon"

    @property
    def torch_type(self) -> str:
        """The torch device type through which tensors reach this device."""
        return TORCH_TYPES[self]

    def torch_device(self) -> torch.device:
        return torch.device(self.torch_type)

    def availability(self) -> Availability:
        return PROBES[self]()

    @classmethod
    def parse(cls, text: str) -> "Device":
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown device '{text}'; expected one of {names}") from None


TORCH_TYPES = {
    Device.CPU: "cpu",
    Device.NVIDIA: "cuda",
    Device.ASCEND: "npu",
    Device.CAMBRICON: "mlu",
    Device.METAX: "cuda",
    Device.MOORE: "musa",
    Device.ILUVATAR: "cuda",
    Device.KUNLUN: "cuda",
    Device.HYGON: "cuda",
}

# Vendors whose PyTorch build presents the card as "cuda": told apart by the device name.
CUDA_LOOKALIKE_NAMES = {
    Device.METAX: ("metax", "mxc"),
    Device.ILUVATAR: ("iluvatar",),
    Device.KUNLUN: ("kunlun", "xpu-"),
    Device.HYGON: ("hygon", "dcu"),
}


def _cuda_names() -> list[str]:
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i).lower() for i in range(torch.cuda.device_count())]


def _probe_cpu() -> Availability:
    return Availability(True, "always available")


def _probe_nvidia() -> Availability:
    if getattr(torch.version, "hip", None):
        return Availability(False, "this PyTorch is a ROCm build; NVIDIA needs a CUDA build")
    names = _cuda_names()
    if not names:
        return Availability(False, f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build: {torch.version.cuda})")
    lookalikes = [n for n in names if any(k in n for keys in CUDA_LOOKALIKE_NAMES.values() for k in keys)]
    if len(lookalikes) == len(names):
        return Availability(False, f"the CUDA devices are not NVIDIA cards: {', '.join(names)}")
    return Availability(True, names[0])


def _probe_lookalike(device: Device) -> Availability:
    names = [n for n in _cuda_names() if any(k in n for k in CUDA_LOOKALIKE_NAMES[device])]
    if not names:
        return Availability(False, f"no {device.value} card is visible through torch.cuda")
    return Availability(True, names[0])


def _probe_extension(device: Device, module: str) -> Availability:
    try:
        importlib.import_module(module)
    except ImportError:
        return Availability(False, f"the PyTorch extension '{module}' for {device.value} is not installed")
    backend = getattr(torch, device.torch_type, None)
    if backend is None or not backend.is_available():
        return Availability(False, f"torch.{device.torch_type}.is_available() is False")
    return Availability(True, f"torch.{device.torch_type}")


PROBES = {
    Device.CPU: _probe_cpu,
    Device.NVIDIA: _probe_nvidia,
    Device.ASCEND: lambda: _probe_extension(Device.ASCEND, "torch_npu"),
    Device.CAMBRICON: lambda: _probe_extension(Device.CAMBRICON, "torch_mlu"),
    Device.MOORE: lambda: _probe_extension(Device.MOORE, "torch_musa"),
    Device.METAX: lambda: _probe_lookalike(Device.METAX),
    Device.ILUVATAR: lambda: _probe_lookalike(Device.ILUVATAR),
    Device.KUNLUN: lambda: _probe_lookalike(Device.KUNLUN),
    Device.HYGON: lambda: _probe_lookalike(Device.HYGON),
}


def release_cached_memory(device: torch.device) -> None:
    """Hands the memory PyTorch's caching allocator holds unused back to the device (`torch.cuda`,
    or the device type's own module, e.g. `torch.npu`): a native kernel allocates outside that cache."""
    module = getattr(torch, device.type, None) if device.type != "cpu" else None
    empty_cache = getattr(module, "empty_cache", None)
    if callable(empty_cache):
        empty_cache()


def once_more_if_out_of_memory(attempt: Callable[[bool], Result], device: torch.device) -> Result:
    """`attempt(False)`; out of memory, `attempt(True)` after PyTorch's cache is released, as a native
    kernel's scratch comes from outside that cache. Out of memory again, the error propagates. The
    release waits until the failed attempt's frame, and with it its tensors, is gone."""
    try:
        return attempt(False)
    except Exception as error:  # noqa: BLE001 - re-raised unless out of memory
        if not is_out_of_memory(error):
            raise
    release_cached_memory(device)
    return attempt(True)


def visible_gpu(index: int, count: int) -> str | None:
    """What CUDA_VISIBLE_DEVICES names the GPU of index `index % count` to a child process; None when
    the variable lists other than `count` entries (which entry is which GPU is then unknown, so the
    child keeps the variable as it is rather than reach a GPU the user left out)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return str(index % count)
    entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
    return entries[index % count] if len(entries) == count else None
