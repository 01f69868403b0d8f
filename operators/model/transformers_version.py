"""The transformers releases the integration is tested against, and the check made before a run.

5.6.0 is the oldest whose Qwen3 and Qwen3-MoE code the integration suites pass against (CI runs them
on it); 5.5.4 routes MoE tokens differently from what it records, and 4.x reads `rope_theta` where 5.x
reads `rope_parameters` and takes `torch_dtype` for `dtype`. A major release past 5 may change the
config fields again, so it is refused until tested."""

from __future__ import annotations

import re

OLDEST = (5, 6)
NEXT_MAJOR = 6
SUPPORTED = f">={OLDEST[0]}.{OLDEST[1]},<{NEXT_MAJOR}"


class TransformersVersionError(Exception):
    """The installed transformers is outside the supported range."""


def release(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise TransformersVersionError(f"transformers version '{version}' cannot be read")
    return int(match.group(1)), int(match.group(2))


def check_transformers_version(version: str | None = None) -> str:
    """The installed (or given) version when supported; raises TransformersVersionError otherwise."""
    if version is None:
        import transformers
        version = transformers.__version__
    if not OLDEST <= release(version) < (NEXT_MAJOR, 0):
        raise TransformersVersionError(
            f"transformers {version} is not supported (supported: {SUPPORTED}); "
            f"pip install 'transformers{SUPPORTED}'")
    return version
