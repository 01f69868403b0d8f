"""Run a harness command in a child process from a test, on the device under test."""

from __future__ import annotations

import gc
import os
import subprocess
from pathlib import Path

import torch

from operators.core.device import Device


def run_child(command: list[str], device: Device | None = None, extra_path: Path | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """The child gets the GPU memory this test process has cached but no longer uses (on an H200
    the suites before it leave up to ~100 GB cached, and the child's cases then ran out of memory);
    extra_path goes in front of the child's PYTHONPATH (a plug-in module written by the test)."""
    if device is Device.NVIDIA:
        gc.collect()
        torch.cuda.empty_cache()
    env = None
    if extra_path is not None:
        env = {**os.environ, "PYTHONPATH": f"{extra_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
