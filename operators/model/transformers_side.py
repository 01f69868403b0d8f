"""The same named points out of transformers' own Qwen3ForCausalLM / Qwen3MoeForCausalLM (eager attention,
eager experts), captured with forward hooks and reshaped like the runner's taps (batch dimension dropped).

MoE routing can be forced: given the experts our runner chose per layer, each router keeps its own logits
and float32 softmax but takes those ids (Qwen3MoeTopKRouter.forward with the top-k replaced), so the
continuous points compare like with like; whether our choices were legitimate is judged on the logits."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Callable

import torch

Points = dict[tuple[int | None, str], torch.Tensor]
Routing = dict[int, torch.Tensor]  # layer -> expert ids [T, top_k] chosen for each token


def load_model(directory: Path, dtype: torch.dtype, device: torch.device | str, moe: bool) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    extra = {"experts_implementation": "eager"} if moe else {}  # grouped_mm has no float64
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype, attn_implementation="eager", **extra)
    return model.to(device).eval()


def rotary_function(model: torch.nn.Module) -> Callable:
    """apply_rotary_pos_emb of the model's own modeling module (qwen3 or qwen3_moe)."""
    return importlib.import_module(type(model).__module__).apply_rotary_pos_emb


def first(output):
    return output[0] if isinstance(output, tuple) else output


def capture(model: torch.nn.Module, ids: torch.Tensor, routing: Routing | None = None) -> Points:
    """Run one prefill of `ids` [T] and return every named point, each a float tensor on the CPU, plus
    (layer, "router_logits") of MoE layers; `routing` forces the experts of each MoE layer."""
    points: Points = {}
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    tokens = ids.shape[0]

    def keep(layer: int | None, point: str, heads: bool = False):
        def store(tensor: torch.Tensor) -> None:
            tensor = first(tensor).detach()[0]
            points[(layer, point)] = tensor.reshape(tokens, -1, head_dim) if heads else tensor
        return store

    def after(module: torch.nn.Module, store) -> None:
        handles.append(module.register_forward_hook(lambda m, args, out: store(out)))

    def before(module: torch.nn.Module, store) -> None:
        handles.append(module.register_forward_pre_hook(lambda m, args: store(args[0])))

    handles: list = []
    rotary: dict[str, torch.Tensor] = {}
    body = model.model
    after(body.embed_tokens, keep(None, "embedding"))
    handles.append(body.rotary_emb.register_forward_hook(lambda m, a, out: rotary.update(cos=out[0], sin=out[1])))
    for index, layer in enumerate(body.layers):
        attention = layer.self_attn
        after(layer.input_layernorm, keep(index, "input_norm"))
        for name in ("q", "k", "v"):
            after(getattr(attention, f"{name}_proj"), keep(index, f"{name}_proj", heads=True))
        after(attention.q_norm, keep(index, "q_norm"))
        after(attention.k_norm, keep(index, "k_norm"))
        before(attention.o_proj, keep(index, "attention", heads=True))
        after(attention.o_proj, keep(index, "o_proj"))
        before(layer.post_attention_layernorm, keep(index, "attention_residual"))
        after(layer.post_attention_layernorm, keep(index, "post_norm"))
        moe = hasattr(layer.mlp, "gate") and hasattr(layer.mlp, "experts")
        if moe:
            chosen = None if routing is None else routing[index]
            handles.append(layer.mlp.gate.register_forward_hook(
                lambda m, a, out, index=index, chosen=chosen: route(points, index, m, out, chosen)))
        after(layer.mlp, keep(index, "moe" if moe else "mlp"))
        after(layer, keep(index, "output"))
    after(body.norm, keep(None, "final_norm"))
    after(model.lm_head, keep(None, "logits"))
    try:
        with torch.no_grad():
            model(input_ids=ids[None].to(model.device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    add_rope(points, rotary, rotary_function(model), len(body.layers))
    return {key: value.cpu() for key, value in points.items()}


def route(points: Points, index: int, router: torch.nn.Module, out: tuple, chosen: torch.Tensor | None):
    """Keep the router's logits, weights and ids (as the runner's taps); with `chosen`, return the router's
    output for those experts instead of its own top-k."""
    logits, weights, ids = out
    if chosen is not None:
        ids = chosen.to(logits.device)
        weights = torch.gather(torch.softmax(logits, dim=-1, dtype=torch.float), 1, ids)
        if router.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(logits.dtype)
    points[(index, "moe_weights")], points[(index, "moe_ids")] = weights.detach(), ids.detach()
    points[(index, "router_logits")] = logits.detach()
    return logits, weights, ids


def add_rope(points: Points, rotary: dict[str, torch.Tensor], apply: Callable, layers: int) -> None:
    """rope_q / rope_k: transformers' apply_rotary_pos_emb on the hooked q_norm / k_norm outputs."""
    for index in range(layers):
        q, k = (points[(index, name)].transpose(0, 1)[None] for name in ("q_norm", "k_norm"))
        rotated_q, rotated_k = apply(q, k, rotary["cos"], rotary["sin"])
        points[(index, "rope_q")] = rotated_q[0].transpose(0, 1)
        points[(index, "rope_k")] = rotated_k[0].transpose(0, 1)


def greedy(model: torch.nn.Module, prompt: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' own cached decode, greedy: (generated ids [steps], logits [steps, V] that chose them)."""
    ids, chosen, rows = prompt[None].to(model.device), [], []
    cache = None
    # transformers renamed `past_key_values` to `cache` in 5.x; accept either release.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=ids, use_cache=True, **{name: cache})
            cache, logits = getattr(out, name), out.logits[0, -1]
            rows.append(logits.cpu())
            chosen.append(int(torch.argmax(logits)))
            ids = torch.tensor([[chosen[-1]]], device=model.device)
    return torch.tensor(chosen, dtype=torch.int64), torch.stack(rows) if rows else torch.empty(0)
