"""The one error a checkpoint raises: what is wrong, naming the file and, where there is one, the tensor."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint directory cannot be used as a Qwen3 model; nothing was loaded."""
