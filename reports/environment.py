"""What the report records about where it ran: versions, machine, git revision, native library."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from operators.backends.backend import Backend

REPOSITORY = Path(__file__).resolve().parent.parent
DISTRIBUTION = "qwen3-kernel-harness"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPOSITORY,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(torch_type: str) -> dict[str, Any]:
    if torch_type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"kind": "cuda", "name": props.name, "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    return {"kind": torch_type, "name": cpu_model(), "threads": torch.get_num_threads()}


def collect_environment(torch_type: str, backend: Backend | None) -> dict[str, Any]:
    """`backend`: the backend judged (its native library's path and build hash, the module that
    loaded it and that module's version), or None."""
    return {
        "harness": {"version": package_version(DISTRIBUTION), "git_sha": git_sha()},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": package_version("transformers"),
        "hypothesis": package_version("hypothesis"),
        "device": device_description(torch_type),
        "native_library": dict(backend.environment) if backend else {},
        "backend": {"module": backend.source or None, "version": backend.version} if backend else None,
        "host": platform.node(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
