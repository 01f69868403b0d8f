import torch


def write(cache: torch.Tensor, new: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """kv_cache_write in place (what an engine does to its cache buffer); returns the cache."""
    batch = torch.arange(new.shape[0], device=new.device)[:, None]
    cache[batch, positions.long()] = new
    return cache


def write_paged(cache: torch.Tensor, new: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """kv_cache_write_paged in place; returns the cache."""
    cache.view(-1, *cache.shape[2:])[slots.long()] = new
    return cache


def kv_cache_write(cache: torch.Tensor, new: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """DynamicCache-style update: cache [B, L, Hkv, D] gets new [B, S, Hkv, D] at positions [B, S]."""
    return write(cache.clone(), new, positions)


def kv_cache_write_paged(cache: torch.Tensor, new: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Paged update: cache [blocks, block_size, Hkv, D] gets new [N, Hkv, D] at flat slots [N]."""
    return write_paged(cache.clone(), new, slots)
