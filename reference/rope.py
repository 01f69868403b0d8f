import torch

NEOX = "neox"
GPTJ = "gptj"


def inverse_frequencies(head_dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """Qwen3RotaryEmbedding's default inv_freq, a float32 buffer of the model. transformers builds it
    on the CPU when the model is constructed (the CPU's powf), then moves it with the model: computed
    on a GPU, powf's last-ulp differences would move the angles at position 10^5 by 10^-2 radians."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim
    return (1.0 / (theta ** exponents)).to(device)


def cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype, upcast: torch.dtype,
            layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3RotaryEmbedding.forward: angles in `upcast` (float32 in HF), cos/sin cast to x's dtype.

    Returns [tokens, 1, head_dim] tables; NeoX repeats the half table, GPT-J interleaves it."""
    return cos_sin_of(positions, inverse_frequencies(head_dim, theta, positions.device), dtype, upcast, layout)


def cos_sin_of(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype, upcast: torch.dtype,
               layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """cos_sin from the model's inv_freq buffer."""
    inv_freq = inv_freq.to(upcast)
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
    return rotate(x, positions, inverse_frequencies(x.shape[-1], theta, x.device), layout, upcast)


def rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, layout: str = NEOX,
           upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """rope from the model's inv_freq buffer (what a compiled model sees as an input)."""
    cos, sin = cos_sin_of(positions, inv_freq, x.dtype, upcast, layout)
    return apply_rotary(x, cos, sin, layout)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str = NEOX) -> torch.Tensor:
    """apply_rotary_pos_emb from cos/sin tables built once per forward (cos_sin)."""
    rotated = rotate_half(x) if layout == NEOX else rotate_every_two(x)
    return (x * cos) + (rotated * sin)
