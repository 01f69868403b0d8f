import torch


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """nn.Linear: y = x W^T (+ b). Qwen3 projections have no bias (attention_bias = false)."""
    return torch.nn.functional.linear(x, weight, bias)
