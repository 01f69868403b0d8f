import torch

from reference.linear import linear
from reference.swiglu import swiglu


def moe_router(x: torch.Tensor, gate_weight: torch.Tensor, top_k: int, norm_topk_prob: bool,
               upcast: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3MoeTopKRouter: logits in x's dtype, softmax in float32, top-k, renormalise, cast back."""
    logits = linear(x, gate_weight)
    probs = torch.softmax(logits, dim=-1, dtype=upcast)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(x.dtype), ids


def router_weights_for(x: torch.Tensor, gate_weight: torch.Tensor, ids: torch.Tensor, norm_topk_prob: bool,
                       upcast: torch.dtype = torch.float32, project=linear) -> torch.Tensor:
    """The router weights of given expert choices (to judge a kernel's weights on its own choices);
    `project(x, gate_weight)` computes the logits (another correct GEMM, for the budget's ensemble)."""
    probs = torch.softmax(project(x, gate_weight), dim=-1, dtype=upcast)
    weights = torch.gather(probs, -1, ids.long())
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(x.dtype)


def moe_experts(x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor, gate_up: torch.Tensor,
                down: torch.Tensor) -> torch.Tensor:
    """Qwen3MoeExperts.forward: per expert, SwiGLU MLP of its tokens, scaled, index_add in x's dtype;
    an expert's weights are taken in x's dtype one expert at a time (the float64 reference's are
    given in the working dtype: float64 copies of all would be 19 GB at 235B-A22B's shapes)."""
    out = torch.zeros_like(x)
    ids = ids.long()
    for expert in torch.unique(ids).tolist():
        token, slot = torch.where(ids == expert)
        gate, up = linear(x[token], gate_up[expert].to(x.dtype)).chunk(2, dim=-1)
        hidden = linear(swiglu(gate, up), down[expert].to(x.dtype)) * weights[token, slot, None]
        out.index_add_(0, token, hidden.to(out.dtype))
    return out
