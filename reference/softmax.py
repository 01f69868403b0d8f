import torch


def softmax(x: torch.Tensor, upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """nn.functional.softmax(x, dim=-1, dtype=torch.float32).to(x.dtype), as HF attention does."""
    return torch.softmax(x, dim=-1, dtype=upcast).to(x.dtype)


def causal_mask(q_len: int, k_len: int, device: torch.device | None = None) -> torch.Tensor:
    """True where query i may see key j: j <= i + (k_len - q_len) (the queries are the last q_len tokens)."""
    rows = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return torch.arange(k_len, device=device)[None, :] <= rows


def causal_softmax(x: torch.Tensor, upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """Softmax of x [..., q_len, k_len] under the causal mask; masked entries are 0 (also in a row
    whose visible entries are all -inf, where the visible ones are NaN)."""
    visible = causal_mask(x.shape[-2], x.shape[-1], x.device)
    masked = x.to(upcast).masked_fill(~visible, float("-inf"))
    return torch.softmax(masked, dim=-1).masked_fill(~visible, 0.0).to(x.dtype)
