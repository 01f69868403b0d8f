import torch


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Qwen3MLP's act_fn(gate_proj(x)) * up_proj(x) with act_fn = SiLU."""
    return torch.nn.functional.silu(gate) * up
