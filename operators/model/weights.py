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


def layer_tensors(tensors: Mapping[str, torch.Tensor], config: ModelConfig, index: int) -> dict[str, torch.Tensor]:
    prefix = f"model.layers.{index}"

    def weight(module: str) -> torch.Tensor:
        return tensor(tensors, f"{prefix}.{module}.weight")

    layer = {short: weight(module) for short, module in ATTENTION.items()}
    if config.layer_is_moe(index):
        layer["router"] = weight("mlp.gate")
        layer["gate_up"] = tensor(tensors, f"{prefix}.mlp.experts.gate_up_proj")
        layer["experts_down"] = tensor(tensors, f"{prefix}.mlp.experts.down_proj")
    else:
        layer.update({short: weight(module) for short, module in DENSE_MLP.items()})
    return layer


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
