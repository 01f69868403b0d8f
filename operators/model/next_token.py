"""What the final logits mean for the next token: KL divergence of the distributions, top-1/top-5
agreement over positions, and the perplexity of the prompt, each for ours and for the same-dtype baseline
against the float64 reference (reported, not gated: the logits point carries the budget verdict)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from operators.core.metrics import cosine

TOP = 5
# Sampling settings of Qwen3's generation_config.json (thinking mode); the uniform draws come from a fixed seed.
SAMPLING = {"temperature": 0.6, "top_k": 20, "top_p": 0.95}
SAMPLING_SEED = 0


@dataclass(frozen=True)
class NextTokenSummary:
    cosine: float
    baseline_cosine: float
    kl_mean: float  # mean over positions of KL(reference || ours), nats
    kl_max: float
    baseline_kl_mean: float
    baseline_kl_max: float
    top1_agreement: float  # fraction of positions whose argmax matches the reference's
    baseline_top1_agreement: float
    top5_overlap: float  # mean |top5(ours) & top5(reference)| / 5
    baseline_top5_overlap: float
    perplexity: float | None  # of ids[1:] given the logits of ids[:-1]; None for a one-token prompt
    baseline_perplexity: float | None
    reference_perplexity: float | None
    sampled_agreement: float  # fraction of positions where our random_sample picks the reference's token
    baseline_sampled_agreement: float  # the same for the control's sample of the baseline logits

    def to_json(self) -> dict:
        return asdict(self)


def kl_rows(reference: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(reference) || softmax(logits)) per row, in float64."""
    log_p = torch.log_softmax(reference.double(), dim=-1)
    log_q = torch.log_softmax(logits.double().cpu(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).clamp_min(0.0)


def top_overlap(logits: torch.Tensor, reference: torch.Tensor, k: int) -> float:
    k = min(k, reference.shape[-1])
    mine = torch.topk(logits.double().cpu(), k, dim=-1).indices.tolist()
    theirs = torch.topk(reference.double(), k, dim=-1).indices.tolist()
    return sum(len(set(a) & set(b)) for a, b in zip(mine, theirs)) / (k * len(mine))


def perplexity(logits: torch.Tensor, ids: torch.Tensor) -> float | None:
    if ids.shape[0] < 2:
        return None
    log_probs = torch.log_softmax(logits.double().cpu()[:-1], dim=-1)
    nll = -log_probs.gather(1, ids.cpu()[1:, None].long()).mean().item()
    return math.exp(nll)


def uniforms(rows: int) -> torch.Tensor:
    return torch.rand(rows, generator=torch.Generator().manual_seed(SAMPLING_SEED), dtype=torch.float32)


def control_sample(logits: torch.Tensor) -> torch.Tensor:
    """The torch control's random_sample of logits (float32 on the CPU) with the fixed uniforms."""
    from operators.backends.torch_control import random_sample
    out = torch.empty(logits.shape[0], dtype=torch.int64)
    random_sample(out=out, logits=logits.float().cpu(), random=uniforms(logits.shape[0]), **SAMPLING)
    return out


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.cpu() == b.cpu()).double().mean().item()


def summarize_logits(ours: torch.Tensor, base: torch.Tensor, ref: torch.Tensor, ids: torch.Tensor,
                     ours_sampled: torch.Tensor) -> NextTokenSummary:
    ref = ref.double()
    flat = lambda t: t.double().cpu().flatten()  # noqa: E731
    kl_ours, kl_base = kl_rows(ref, ours), kl_rows(ref, base)
    return NextTokenSummary(
        cosine=cosine(flat(ours), flat(ref)), baseline_cosine=cosine(flat(base), flat(ref)),
        kl_mean=kl_ours.mean().item(), kl_max=kl_ours.max().item(),
        baseline_kl_mean=kl_base.mean().item(), baseline_kl_max=kl_base.max().item(),
        top1_agreement=top_overlap(ours, ref, 1), baseline_top1_agreement=top_overlap(base, ref, 1),
        top5_overlap=top_overlap(ours, ref, TOP), baseline_top5_overlap=top_overlap(base, ref, TOP),
        perplexity=perplexity(ours, ids), baseline_perplexity=perplexity(base, ids),
        reference_perplexity=perplexity(ref, ids),
        sampled_agreement=agreement(ours_sampled, control_sample(ref)),
        baseline_sampled_agreement=agreement(control_sample(base), control_sample(ref)))


def top_tokens(logits_row: torch.Tensor, k: int = TOP) -> list[tuple[int, float]]:
    """[(token, probability)] of the k most likely next tokens of one row of logits."""
    probs = torch.softmax(logits_row.double().cpu(), dim=-1)
    values, tokens = torch.topk(probs, min(k, probs.shape[-1]))
    return [(int(t), float(p)) for t, p in zip(tokens, values)]
