import torch

from reference.rms_norm import rms_norm


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float, upcast: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3DecoderLayer's `hidden_states = residual + hidden_states` followed by the next RMSNorm.

    Returns (sum, normed); the sum is rounded to the activation dtype, as the residual stream is."""
    total = residual + x
    return total, rms_norm(total, weight, eps, upcast)
