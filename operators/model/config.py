"""A Qwen3 or Qwen3-MoE config.json, read into the sizes the model needs.

Defaults for absent optional keys are those of transformers' `Qwen3Config` / `Qwen3MoeConfig`, so a
file means here what it means to transformers (a dense config without `head_dim` gets 128, the
`Qwen3Config` default; a MoE config without it gets hidden_size // num_attention_heads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.model.errors import CheckpointError

CONFIG_FILE = "config.json"
ARCHITECTURES = {"qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}
DENSE_HEAD_DIM = 128  # Qwen3Config.head_dim's default
REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps")
REQUIRED_MOE = ("num_experts", "num_experts_per_tok", "moe_intermediate_size")


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 32768
    dtype: str | None = None
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False
    decoder_sparse_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES.values():
            raise ValueError(f"architecture {self.architecture!r} is not one of {sorted(ARCHITECTURES.values())}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings", "decoder_sparse_step"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if not self.rms_norm_eps > 0 or not self.rope_theta > 0:
            raise ValueError(f"rms_norm_eps {self.rms_norm_eps} and rope_theta {self.rope_theta} must be positive")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        if (self.architecture == ARCHITECTURES["qwen3_moe"]) != (self.num_experts > 0):
            raise ValueError(f"{self.architecture} with num_experts {self.num_experts}: "
                             "MoE models have experts, dense models none")
        if self.num_experts and not (0 < self.num_experts_per_tok <= self.num_experts
                                     and self.moe_intermediate_size > 0):
            raise ValueError(f"num_experts_per_tok {self.num_experts_per_tok} must be in [1, {self.num_experts}] "
                             f"and moe_intermediate_size {self.moe_intermediate_size} positive")
        if any(not 0 <= i < self.num_hidden_layers for i in self.mlp_only_layers):
            raise ValueError(f"mlp_only_layers {list(self.mlp_only_layers)} names a layer outside "
                             f"[0, {self.num_hidden_layers})")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def layer_is_moe(self, index: int) -> bool:
        """transformers' Qwen3MoeDecoderLayer rule: sparse unless listed in mlp_only_layers or off the step."""
        if not 0 <= index < self.num_hidden_layers:
            raise IndexError(f"layer {index} outside [0, {self.num_hidden_layers})")
        return (index not in self.mlp_only_layers and self.num_experts > 0
                and (index + 1) % self.decoder_sparse_step == 0)


def read_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no config.json in the checkpoint directory")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    try:
        return _parse(raw)
    except (KeyError, TypeError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else error
        raise CheckpointError(f"{path}: {message}") from error


def _parse(raw: dict[str, Any]) -> ModelConfig:
    model_type = raw.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"model_type {model_type!r} is not a Qwen3 model (expected 'qwen3' or 'qwen3_moe')")
    architecture = ARCHITECTURES[model_type]
    named = raw.get("architectures") or [architecture]
    if named != [architecture]:
        raise ValueError(f"architectures {named} is not [{architecture!r}], the causal LM of model_type {model_type!r}")
    moe = model_type == "qwen3_moe"
    if moe and "num_experts" not in raw and "num_local_experts" in raw:  # transformers 5 writes num_local_experts
        raw = {**raw, "num_experts": raw["num_local_experts"]}
    for key in REQUIRED + (REQUIRED_MOE if moe else ()):
        if raw.get(key) is None:
            raise KeyError(f"required key {key!r} is missing")
    if raw.get("attention_bias"):
        raise ValueError("attention_bias is true; Qwen3 projections have no bias")
    if raw.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {raw['hidden_act']!r} is not 'silu'")
    if raw.get("use_sliding_window"):
        raise ValueError("use_sliding_window is true; only full causal attention is supported")
    default_head_dim = raw["hidden_size"] // raw["num_attention_heads"] if moe else DENSE_HEAD_DIM
    return ModelConfig(
        architecture=architecture,
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        intermediate_size=raw["intermediate_size"],
        num_hidden_layers=raw["num_hidden_layers"],
        num_attention_heads=raw["num_attention_heads"],
        num_key_value_heads=raw["num_key_value_heads"],
        head_dim=raw.get("head_dim") or default_head_dim,
        rms_norm_eps=float(raw["rms_norm_eps"]),
        rope_theta=_rope_theta(raw),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        max_position_embeddings=raw.get("max_position_embeddings", 32768),
        dtype=raw.get("dtype") or raw.get("torch_dtype"),
        num_experts=raw["num_experts"] if moe else 0,
        num_experts_per_tok=raw["num_experts_per_tok"] if moe else 0,
        moe_intermediate_size=raw["moe_intermediate_size"] if moe else 0,
        norm_topk_prob=bool(raw.get("norm_topk_prob", False)) if moe else False,
        decoder_sparse_step=raw.get("decoder_sparse_step", 1) if moe else 1,
        mlp_only_layers=tuple(raw.get("mlp_only_layers") or ()) if moe else (),
    )


def _rope_theta(raw: dict[str, Any]) -> float:
    """transformers 4 writes `rope_theta` and `rope_scaling`; transformers 5 writes `rope_parameters`."""
    theta = raw.get("rope_theta")
    for key in ("rope_parameters", "rope_scaling"):
        params = raw.get(key)
        if params is None:
            continue
        if not isinstance(params, dict):
            raise ValueError(f"{key} must be an object, got {params!r}")
        kind = params.get("rope_type", params.get("type", "default"))
        if kind != "default":
            raise ValueError(f"{key} has rope type {kind!r}; only the default (unscaled) rotary embedding is "
                             "supported")
        theta = params.get("rope_theta", theta)
    if theta is None:
        raise KeyError("required key 'rope_theta' is missing (neither rope_theta nor rope_parameters.rope_theta)")
    return float(theta)
