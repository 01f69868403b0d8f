"""Sensitivities of the attention operators: max |score| * max |v| over what each query may see."""

from __future__ import annotations

import math

import torch

from operators.budget import Sensitivity
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


def prefill(inputs, attributes) -> Sensitivity:
    return Sensitivity(score_sensitivity(inputs["q"], inputs["k"], inputs["v"], attributes["scale"]))


def decode(inputs, attributes) -> Sensitivity:
    return Sensitivity(max((score_sensitivity(inputs["q"][b], inputs["k_cache"][b, :length], inputs["v_cache"][b, :length],
                                  attributes["scale"])
                for b, length in enumerate(inputs["seq_lens"].tolist())), default=0.0))


def decode_paged(inputs, attributes) -> Sensitivity:
    result = 0.0
    for b, length in enumerate(inputs["seq_lens"].tolist()):
        keys = gather_pages(inputs["k_cache"], inputs["block_table"][b], length)
        values = gather_pages(inputs["v_cache"], inputs["block_table"][b], length)
        result = max(result, score_sensitivity(inputs["q"][b], keys, values, attributes["scale"]))
    return Sensitivity(result if math.isfinite(result) else 0.0)


def rope(inputs, attributes) -> Sensitivity:
    """|angle| * |x pair| at every element: an angle error of one unit (relative to the angle) turns
    the pair by that much."""
    x, positions = inputs["x"], inputs["positions"].to(torch.float64)
    half = x.shape[-1] // 2
    inv_freq = 1.0 / attributes["theta"] ** (torch.arange(half, dtype=torch.float64, device=x.device) * 2 / x.shape[-1])
    angles = (positions[:, None] * inv_freq[None, :]).abs()[:, None, :]  # [tokens, 1, pairs]
    if attributes["layout"] == "neox":
        first, second = x[..., :half], x[..., half:]
    else:
        first, second = x[..., 0::2], x[..., 1::2]
    turned = torch.sqrt(first * first + second * second) * angles  # [tokens, heads, pairs]
    turned = turned[torch.isfinite(turned)]
    if not turned.numel():
        return Sensitivity()
    peak, norm = torch.stack([turned.max(), turned.norm() * math.sqrt(2)]).tolist()  # both elements of a pair
    return Sensitivity(peak, norm)
