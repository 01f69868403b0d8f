"""Sensitivities of the attention operators: how far float32 rounding of the scores can move the output."""

from __future__ import annotations

import math

import torch

from operators.core.budget import Sensitivity
from reference.attention import gather_pages, repeat_kv
from reference.softmax import causal_mask


# The rel-L2 term bounds an aggregate of many independent score errors: the rounding error of a
# float32 dot product of D terms, summed in any order, is at most D roundings of at most half an ulp
# of a partial sum (each partial sum within sum_d |q_d k_d|); uniform roundings have an RMS of that
# half-ulp / sqrt(3). So the score error's RMS is at most sqrt(D / 3) half-ulps of sum_d |q_d k_d|,
# whatever the order (cuBLAS tiles, a CUDA-core FMA chain, SDPA's kernels); three times it bounds the
# L2 norm over many output elements with a wide margin, and TF32 or half-precision scores (errors
# 2^-11 relative and worse) still fail it by two orders of magnitude.
ROUNDING_SIGMAS = 3.0
CHUNK_ELEMENTS = 1 << 26  # scores held at once (float64): 512 MiB


def score_sensitivity(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> tuple[float, float]:
    """q [Tq, Hq, D], k/v [Tk, Hkv, D]. Score errors ds_j of a query move its output by
    sum_j p_j ds_j (v_j - out) (the softmax Jacobian). Returns:
    - the max-abs factor: max |score| x max |v| (with |ds_j| within an ulp of |s_j|, twice this
      times eps bounds any element);
    - the sum of squares of the rel-L2 factors, one per output element (query, head, d):
      A x sqrt(sum_j p_j v_jd^2 - out_d^2), where A is the largest scale x sum_d |q_d k_jd| over the
      keys the query sees (a dot product's rounding scale) and the root is the spread of the values
      it attends to (Cauchy-Schwarz on sum_j p_j |v_jd - out_d|; 0 when it attends to one key)."""
    if q.numel() == 0 or k.numel() == 0:
        return 0.0, 0.0
    groups = q.shape[-2] // k.shape[-2]
    queries = q.transpose(0, 1)  # [Hq, Tq, D]
    keys = repeat_kv(k, groups).transpose(0, 1)  # [Hq, Tk, D]
    values = repeat_kv(v, groups).transpose(0, 1).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    hidden = ~causal_mask(q.shape[0], k.shape[0], q.device)  # query i sees keys j <= i + Tk - Tq
    heads = max(1, CHUNK_ELEMENTS // max(1, q.shape[0] * k.shape[0]))
    largest_score, squares = 0.0, 0.0
    for start in range(0, queries.shape[0], heads):
        chunk = slice(start, start + heads)
        scores = (queries[chunk] @ keys[chunk].transpose(1, 2) * scale).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        largest_score = max(largest_score, scores.abs().masked_fill_(hidden, 0.0).max().item())
        magnitude = (queries[chunk].abs() @ keys[chunk].abs().transpose(1, 2) * abs(scale))
        rounding_scale = magnitude.nan_to_num_(nan=0.0, posinf=0.0).masked_fill_(hidden, 0.0).amax(-1)  # [h, Tq]
        probabilities = torch.softmax(scores.masked_fill_(hidden, -math.inf), dim=-1)
        out = probabilities @ values[chunk]
        spread = (probabilities @ (values[chunk] * values[chunk]) - out * out).clamp_(min=0.0)  # [h, Tq, D]
        squares += ((rounding_scale * rounding_scale)[..., None] * spread).sum().item()
    largest_value = values.abs().max().item() if values.numel() else 0.0
    return largest_score * largest_value, squares


def prefill(inputs, attributes) -> Sensitivity:
    return combined([score_sensitivity(inputs["q"], inputs["k"], inputs["v"], attributes["scale"])],
                    inputs["q"].shape[-1])


def decode(inputs, attributes) -> Sensitivity:
    per_sequence = [score_sensitivity(inputs["q"][b], inputs["k_cache"][b, :length], inputs["v_cache"][b, :length],
                                      attributes["scale"])
                    for b, length in enumerate(inputs["seq_lens"].tolist())]
    return combined(per_sequence, inputs["q"].shape[-1])


def decode_paged(inputs, attributes) -> Sensitivity:
    per_sequence = []
    for b, length in enumerate(inputs["seq_lens"].tolist()):
        keys = gather_pages(inputs["k_cache"], inputs["block_table"][b], length)
        values = gather_pages(inputs["v_cache"], inputs["block_table"][b], length)
        per_sequence.append(score_sensitivity(inputs["q"][b], keys, values, attributes["scale"]))
    return combined(per_sequence, inputs["q"].shape[-1])


def combined(per_sequence: list[tuple[float, float]], head_dim: int) -> Sensitivity:
    """In the units of Budget.sensitivity_ulps (float32 ulps; 2 of them): the max-abs factor as it is,
    the rel-L2 one scaled so that the budget's term is ROUNDING_SIGMAS x sqrt(D / 3) half-ulps of it."""
    peak = max((p for p, _ in per_sequence), default=0.0)
    norm = ROUNDING_SIGMAS * math.sqrt(head_dim / 3) / 4 * math.sqrt(sum(s for _, s in per_sequence))
    return Sensitivity(peak if math.isfinite(peak) else 0.0, norm if math.isfinite(norm) else 0.0)


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
