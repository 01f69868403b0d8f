import torch


def kv_cache_write(cache: torch.Tensor, new: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """DynamicCache-style update: cache [B, L, Hkv, D] gets new [B, S, Hkv, D] at positions [B, S]."""
    out = cache.clone()
    batch = torch.arange(new.shape[0], device=new.device)[:, None]
    out[batch, positions.long()] = new
    return out


def kv_cache_write_paged(cache: torch.Tensor, new: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Paged update: cache [blocks, block_size, Hkv, D] gets new [N, Hkv, D] at flat slots [N]."""
    out = cache.clone()
    out.view(-1, *cache.shape[2:])[slots.long()] = new
    return out
