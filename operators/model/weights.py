"""A checkpoint's tensors (operators.model.checkpoint's layout: experts already stacked as gate_up [E, 2M, H],
gate rows first, and down [E, H, M], the moe_experts layout) arranged per layer for the backend runner,
cast to the working dtype on the device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from operators.model.config import ModelConfig

ATTENTION = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm", "input_norm": "input_layernorm",
             "post_norm": "post_attention_layernorm"}
DENSE_MLP = {"gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


@dataclass(frozen=True)
class ModelWeights:
    config: ModelConfig
    dtype: torch.dtype
    embedding: torch.Tensor
    final_norm: torch.Tensor
    lm_head: torch.Tensor  # the embedding itself when the checkpoint ties them
    layers: tuple[Mapping[str, torch.Tensor], ...]


def tensor(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in tensors:
        raise KeyError(f"the checkpoint has no tensor '{name}'")
    return tensors[name]


MOE_MLP = {"router": "mlp.gate.weight", "gate_up": "mlp.experts.gate_up_proj", "experts_down": "mlp.experts.down_proj"}


def layer_names(config: ModelConfig, index: int) -> dict[str, str]:
    """A layer's weights: the runner's short name -> transformers' parameter name under the layer."""
    names = {short: f"{module}.weight" for short, module in ATTENTION.items()}
    if config.layer_is_moe(index):
        names.update(MOE_MLP)
    else:
        names.update({short: f"{module}.weight" for short, module in DENSE_MLP.items()})
    return names


def layer_tensors(tensors: Mapping[str, torch.Tensor], config: ModelConfig, index: int) -> dict[str, torch.Tensor]:
    return {short: tensor(tensors, f"model.layers.{index}.{name}") for short, name in layer_names(config, index).items()}


def arrange_weights(tensors: Mapping[str, torch.Tensor], config: ModelConfig, dtype: torch.dtype,
                    device: torch.device | str) -> ModelWeights:
    """Every tensor cast to `dtype` (the linear, moe and attention contracts want one dtype) on `device`."""
    def place(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype).contiguous()

    embedding = place(tensor(tensors, "model.embed_tokens.weight"))
    head = embedding if config.tie_word_embeddings else place(tensor(tensors, "lm_head.weight"))
    layers = tuple({k: place(v) for k, v in layer_tensors(tensors, config, i).items()}
                   for i in range(config.num_hidden_layers))
    return ModelWeights(config, dtype, embedding, place(tensor(tensors, "model.norm.weight")), head, layers)


def by_transformers_name(weights: ModelWeights) -> dict[str, torch.Tensor]:
    """Every tensor of `weights` under its transformers parameter name (a tied head under both names)."""
    named = {"model.embed_tokens.weight": weights.embedding, "model.norm.weight": weights.final_norm,
             "lm_head.weight": weights.lm_head}
    for index, layer in enumerate(weights.layers):
        named.update({f"model.layers.{index}.{name}": layer[short]
                      for short, name in layer_names(weights.config, index).items()})
    return named
