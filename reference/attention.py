import torch

from reference.softmax import causal_mask


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """modeling_qwen3.repeat_kv on [..., tokens, kv_heads, head_dim]: kv head j serves query heads j*groups .. j*groups+groups-1."""
    return x.repeat_interleave(groups, dim=-2)


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float,
                    upcast: torch.dtype = torch.float32) -> torch.Tensor:
    """modeling_qwen3.eager_attention_forward for one sequence: q [Tq, Hq, D], k/v [Tk, Hkv, D],
    mask [Tq, Tk] (True = visible). Scores in q's dtype, softmax in `upcast` then cast to q's dtype."""
    groups = q.shape[-2] // k.shape[-2]
    keys, values = repeat_kv(k, groups).transpose(0, 1), repeat_kv(v, groups).transpose(0, 1)
    scores = torch.matmul(q.transpose(0, 1), keys.transpose(1, 2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=upcast).to(q.dtype)
    return torch.matmul(weights, values).transpose(0, 1)


def attention_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                      upcast: torch.dtype = torch.float32, attend=eager_attention) -> torch.Tensor:
    """Causal self-attention of one sequence of T tokens; `attend` is the per-sequence attention
    (eager_attention: Hugging Face; another correct formulation for the budget's ensemble)."""
    return attend(q, k, v, causal_mask(q.shape[0], k.shape[0], q.device), scale, upcast)


def attention_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, seq_lens: torch.Tensor,
                     scale: float, upcast: torch.dtype = torch.float32, attend=eager_attention) -> torch.Tensor:
    """S new tokens per request against a contiguous cache [B, L, Hkv, D] holding seq_lens[b] tokens."""
    out = torch.empty_like(q)
    for b, length in enumerate(seq_lens.tolist()):
        past = slice(0, length)
        mask = causal_mask(q.shape[1], length, q.device)
        out[b] = attend(q[b], k_cache[b, past], v_cache[b, past], mask, scale, upcast)
    return out


def gather_pages(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` positions of one request from a paged cache [blocks, block_size, Hkv, D]."""
    block_size = cache.shape[1]
    blocks = block_table[: (length + block_size - 1) // block_size].long()
    return cache[blocks].flatten(0, 1)[:length]


def attention_decode_paged(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                           seq_lens: torch.Tensor, scale: float, upcast: torch.dtype = torch.float32,
                           attend=eager_attention) -> torch.Tensor:
    out = torch.empty_like(q)
    for b, length in enumerate(seq_lens.tolist()):
        keys = gather_pages(k_cache, block_table[b], length)
        values = gather_pages(v_cache, block_table[b], length)
        out[b] = attend(q[b], keys, values, causal_mask(q.shape[1], length, q.device), scale, upcast)
    return out
