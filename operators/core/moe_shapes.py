"""Qwen3-MoE shapes, scaled down for the CPU: 128 experts, 8 per token, hidden and expert widths / 16."""

from __future__ import annotations

from hypothesis import strategies as st

from operators.core.device import Device
from operators.core.qwen3_configs import QWEN3_CONFIGS

CPU_SCALE = 16


def moe_shapes(device: Device) -> st.SearchStrategy[tuple[str, int, int, int, int]]:
    """(note, experts, experts per token, hidden, expert width) of each MoE configuration."""
    scale = CPU_SCALE if device is Device.CPU else 1
    shapes = [(f"{c.name}" + (f" / {scale}" if scale > 1 else ""), c.experts, c.experts_per_token,
               c.hidden // scale, c.intermediate // scale) for c in QWEN3_CONFIGS if c.experts]
    # Few experts: every expert is hit by several tokens (index_add collisions).
    shapes.append(("8 experts, top 2", 8, 2, 64, 24))
    return st.sampled_from(shapes)
