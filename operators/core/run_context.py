"""What a backend learns before its first kernel call (its `setup` hook), and a reusable workspace
for libraries that want scratch memory per call (a descriptor API's workspace query)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.core.device import Device


@dataclass(frozen=True)
class RunContext:
    device: Device
    operators: tuple[str, ...]  # the operators this run will call
    max_position: int  # every rope position and cache position of the run is below this
    stream: int | None  # the CUDA stream the harness runs on (kernels should too); None on the CPU


def current_stream(device: Device) -> int | None:
    if device.torch_type == "cuda" and torch.cuda.is_available():
        return torch.cuda.current_stream().cuda_stream
    return None


class Workspace:
    """Scratch bytes on the device, grown when a call asks for more and reused after."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.buffer = torch.empty(0, dtype=torch.uint8, device=device.torch_device())

    def get(self, nbytes: int) -> torch.Tensor:
        if nbytes > self.buffer.numel():
            self.buffer = torch.empty(nbytes, dtype=torch.uint8, device=self.device.torch_device())
        return self.buffer[:nbytes]
