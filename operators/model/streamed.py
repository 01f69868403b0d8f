"""transformers' own Qwen3 model with its decoder layers' weights streamed: built on the `meta` device, the
embedding, final norm and head placed once (and taken from `source` again, unused, before every forward,
for its check), and each decoder layer's weights taken from `source` (our
runner's, in the working dtype on the device: shared_weights.py), cast to the compute dtype just before the
layer runs (the working-dtype model then shares the runner's tensors; the float64 one makes a copy of that
layer alone), then dropped when it returns. The forward is transformers' own,
unchanged (its masks, rotary embedding, caches, hooks), so every point it gives equals the fully loaded
model's; memory holds one layer's weights at a time, whatever the depth."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import torch


class WeightSource(Protocol):
    def tensor(self, name: str) -> torch.Tensor:
        """Transformers parameter `name`, rounded to the working dtype."""


def streamed_model(directory: Path, source: WeightSource, working: torch.dtype, compute: torch.dtype,
                   device: torch.device | str, moe: bool) -> torch.nn.Module:
    """The model of the checkpoint in `directory` with `source`'s weights (in `working`), computed in
    `compute` on `device` (compute == working: the working-dtype baseline; float64: the reference)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(directory))
    extra = {"experts_implementation": "eager"} if moe else {}  # grouped_mm has no float64
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=working, attn_implementation="eager", **extra)
    # The rotary inverse frequencies are a buffer computed at construction in float32, cast only where the
    # whole model is (the float64 reference).
    rotary = type(model.model.rotary_emb)(config=model.config).to(device)
    model.model.rotary_emb = rotary if compute == working else rotary.to(compute)
    model.eval()

    def place(name: str) -> torch.Tensor:
        return source.tensor(name).to(working).to(device=device, dtype=compute)

    embedding = place("model.embed_tokens.weight")
    set_parameter(model.model.embed_tokens, "weight", embedding)
    set_parameter(model.model.norm, "weight", place("model.norm.weight"))
    tied = config.tie_word_embeddings
    set_parameter(model.lm_head, "weight", embedding if tied else place("lm_head.weight"))
    # Placed once, so taken from `source` again before every forward: its check (shared_weights.py) sees
    # a write into them as it sees one into a layer's weights.
    whole_model = ["model.embed_tokens.weight", "model.norm.weight"] + ([] if tied else ["lm_head.weight"])

    def check_whole_model_weights(module: torch.nn.Module, args: tuple) -> None:
        for name in whole_model:
            source.tensor(name)

    model.register_forward_pre_hook(check_whole_model_weights)
    for index, layer in enumerate(model.model.layers):
        names = [name for name, _ in layer.named_parameters()]
        layer.register_forward_pre_hook(loader(layer, names, f"model.layers.{index}.", place))
        layer.register_forward_hook(lambda module, args, out, names=names: drop(module, names))
    return model


def set_parameter(module: torch.nn.Module, path: str, value: torch.Tensor) -> None:
    """Replace parameter `path` (dotted, under `module`) by `value`, without autograd."""
    owner, _, leaf = path.rpartition(".")
    target = module.get_submodule(owner) if owner else module
    target._parameters[leaf] = torch.nn.Parameter(value, requires_grad=False)


def loader(layer: torch.nn.Module, names: list[str], prefix: str,
           place: Callable[[str], torch.Tensor]) -> Callable:
    def load(module: torch.nn.Module, args: tuple) -> None:
        for name in names:
            set_parameter(layer, name, place(prefix + name))
    return load


def drop(layer: torch.nn.Module, names: list[str]) -> None:
    """Every weight of `layer` back to an empty meta tensor of its shape: the memory goes."""
    for name in names:
        parameter = layer.get_parameter(name)
        set_parameter(layer, name, torch.empty(parameter.shape, dtype=parameter.dtype, device="meta"))
