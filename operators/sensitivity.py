"""Sensitivities of the attention operators: max |score| * max |v| over what each query may see."""

from __future__ import annotations

import math

import torch

from reference.attention import gather_pages, repeat_kv
from reference.softmax import causal_mask


def score_sensitivity(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> float:
    """q [Tq, Hq, D], k/v [Tk, Hkv, D]: one float32 rounding of a score moves the output by at most
    float32 eps times this (the softmax Jacobian's factor 2 times half an ulp)."""
    if q.numel() == 0 or k.numel() == 0:
        return 0.0
    keys = repeat_kv(k, q.shape[-2] // k.shape[-2])
    scores = torch.einsum("qhd,khd->hqk", q, keys) * scale
    visible = causal_mask(q.shape[0], k.shape[0], q.device)  # query i sees keys j <= i + Tk - Tq
    scores = scores[:, visible]
    finite = scores[torch.isfinite(scores)]
    largest = finite.abs().max().item() if finite.numel() else 0.0
    values = v[torch.isfinite(v)]
    return largest * (values.abs().max().item() if values.numel() else 0.0)


def prefill(inputs, attributes) -> float:
    return score_sensitivity(inputs["q"], inputs["k"], inputs["v"], attributes["scale"])


def decode(inputs, attributes) -> float:
    return max((score_sensitivity(inputs["q"][b], inputs["k_cache"][b, :length], inputs["v_cache"][b, :length],
                                  attributes["scale"])
                for b, length in enumerate(inputs["seq_lens"].tolist())), default=0.0)


def decode_paged(inputs, attributes) -> float:
    result = 0.0
    for b, length in enumerate(inputs["seq_lens"].tolist()):
        keys = gather_pages(inputs["k_cache"], inputs["block_table"][b], length)
        values = gather_pages(inputs["v_cache"], inputs["block_table"][b], length)
        result = max(result, score_sensitivity(inputs["q"][b], keys, values, attributes["scale"]))
    return result if math.isfinite(result) else 0.0
