import torch

NEOX = "neox"
GPTJ = "gptj"


def inverse_frequencies(head_dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """Qwen3RotaryEmbedding's default inv_freq, a float32 buffer of the model."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).to(torch.float32) / head_dim
    return 1.0 / (theta ** exponents)


def cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype, upcast: torch.dtype,
            layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3RotaryEmbedding.forward: angles in `upcast` (float32 in HF), cos/sin cast to x's dtype.

    Returns [tokens, 1, head_dim] tables; NeoX repeats the half table, GPT-J interleaves it."""
    inv_freq = inverse_frequencies(head_dim, theta, positions.device).to(upcast)
    angles = positions.to(upcast)[:, None] * inv_freq[None, :]
    table = torch.cat((angles, angles), dim=-1) if layout == NEOX else angles.repeat_interleave(2, dim=-1)
    return table.cos().to(dtype)[:, None, :], table.sin().to(dtype)[:, None, :]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """NeoX: (x1, x2) -> (-x2, x1) over the two halves of head_dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """GPT-J: (x0, x1) -> (-x1, x0) over interleaved pairs."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float, layout: str = NEOX,
         upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """apply_rotary_pos_emb for one of q or k, x of shape [tokens, heads, head_dim]."""
    cos, sin = cos_sin(positions, x.shape[-1], theta, x.dtype, upcast, layout)
    rotated = rotate_half(x) if layout == NEOX else rotate_every_two(x)
    return (x * cos) + (rotated * sin)
