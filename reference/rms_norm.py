import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """Qwen3RMSNorm.forward: normalise in `upcast`, cast back to x's dtype, THEN scale by the weight.

    The per-head q/k norm is the same function over head_dim (x of shape [tokens, heads, head_dim]).
    The result follows torch type promotion (an f32 weight with bf16 x gives f32)."""
    hidden = x.to(upcast)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    hidden = hidden * torch.rsqrt(variance + eps)
    return weight * hidden.to(x.dtype)
