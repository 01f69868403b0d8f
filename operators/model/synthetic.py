"""Deterministic random-weight Qwen3 checkpoints, written by transformers itself.

`synthetic_checkpoint("tiny")` builds the model with transformers' own Qwen3 classes, fills it with
seeded random weights and writes it with `save_pretrained`, so the files are exactly what
transformers writes for a real model. Models over 2 GiB (8b and up) stay on the `meta` device and are
written a tensor at a time into the same files (tensor_writer.py, by every core), so host memory holds a few
4 GB shards whatever the size. Directories are cached by name, seed, dtype and layer count and written atomically; a finished one is returned as is.

    python -m operators.model.synthetic --name tiny --seed 0 --dtype bf16 [--layers N] [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import EXIT_PASS, EXIT_USAGE
from operators.model.checkpoint import weights_present
from operators.model.config import ARCHITECTURES, CONFIG_FILE, ModelConfig
from operators.model.errors import CheckpointError
from operators.model.tensor_writer import write_by_tensor
from operators.model.transformers_version import check_transformers_version
from operators.native_library.build import cache_dir

SHARD_SIZE = "4GB"
SHARD_BYTES = 4 * 10 ** 9  # SHARD_SIZE as transformers reads it
IN_MEMORY_BYTES = 2 << 30  # larger models are written a tensor at a time (8b and up)
CHUNK_ELEMENTS = 1 << 24  # random values are drawn this many at a time: 64 MiB of float32 at most

# Weight scales. Every matrix is N(0, (gain / sqrt(fan_in))^2), fan_in its last dim (nn.Linear's
# in_features), so a projection of an RMS-normed input (rms ~1) has outputs of rms ~gain at any width:
# q/k/v/gate/up give rms ~1 (SiLU works in its curved range, neither linear nor dead) and o_proj/down_proj
# each add rms ~0.5-1, so the residual stream grows like sqrt(sublayers) and neither explodes nor vanishes.
# At Qwen3-0.6B widths this is std 0.018-0.031, about the ~0.02 of trained Qwen3 projections.
# Measured on "0.6b" (28 layers, 16 random tokens): residual rms 0.09 after the embedding, 1.0 after layer 0,
# 5.6 after layer 27, each layer still moving it by 20-100%; attention entropy 1.4-1.7 nats (max weight ~0.45).
PROJECTION_GAIN = 1.0
# The router: logits of std ~2 across experts give a clear top-k, not a near-tie for every token.
ROUTER_GAIN = 2.0
# Embedding and head: the final norm's output (rms ~1) times the head gives logits of std ~3 (measured 3.15,
# max ~15), so the top token leads the next by ~0.6 on average over 152k tokens, ~10 bf16 ulps of a logit near 10:
# the argmax is mostly decided by the weights (bf16 and f32 forwards agreed on 15 of 16 tokens), though a
# random model has near-ties, as any model does, and a test must allow for them.
LOGIT_GAIN = 3.0
# RMSNorm weights: log-normal around 1 (median 1, ~20% spread, never negative), as trained norms vary by
# channel. q/k norms sit higher: the attention logits q.k/sqrt(D) of unit-rms q and k have std ~1, too flat;
# a gain of 1.4 on each makes it ~2, a softmax that prefers a few positions without saturating.
NORM_SPREAD = 0.2
QK_NORM_GAIN = 1.4

# (name suffix, kind, gain); the first matching suffix wins.
INITIALISERS = (
    ("self_attn.q_norm.weight", "norm", QK_NORM_GAIN),
    ("self_attn.k_norm.weight", "norm", QK_NORM_GAIN),
    ("norm.weight", "norm", 1.0),  # input_layernorm, post_attention_layernorm, model.norm
    ("embed_tokens.weight", "matrix", LOGIT_GAIN),
    ("lm_head.weight", "matrix", LOGIT_GAIN),
    ("mlp.gate.weight", "matrix", ROUTER_GAIN),
    ("_proj.weight", "matrix", PROJECTION_GAIN),  # attention and dense MLP projections
    ("experts.gate_up_proj", "matrix", PROJECTION_GAIN),  # [E, 2M, H]: fan-in H
    ("experts.down_proj", "matrix", PROJECTION_GAIN),  # [E, H, M]: fan-in M
)


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic model: its cache name and the config it is written with (what read_config gives back)."""

    name: str
    config: ModelConfig

    def shortened(self, layers: int | None) -> "SyntheticSpec":
        """The same model with its first `layers` layers (None: all)."""
        total = self.config.num_hidden_layers
        if layers is None or layers == total:
            return self
        if not 0 < layers <= total:
            raise ValueError(f"{self.name}: layers must be in [1, {total}], got {layers}")
        return replace(self, config=replace(self.config, num_hidden_layers=layers, mlp_only_layers=tuple(
            i for i in self.config.mlp_only_layers if i < layers)))

    def hf_config(self) -> Any:
        """transformers' Qwen3Config or Qwen3MoeConfig of these sizes."""
        from transformers import Qwen3Config, Qwen3MoeConfig

        c = self.config
        common = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                      num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                      num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
                      tie_word_embeddings=c.tie_word_embeddings, rms_norm_eps=c.rms_norm_eps,
                      max_position_embeddings=c.max_position_embeddings,
                      rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta})
        if not c.is_moe:
            return Qwen3Config(**common)
        return Qwen3MoeConfig(**common, num_experts=c.num_experts, num_experts_per_tok=c.num_experts_per_tok,
                              moe_intermediate_size=c.moe_intermediate_size, norm_topk_prob=c.norm_topk_prob,
                              decoder_sparse_step=c.decoder_sparse_step, mlp_only_layers=list(c.mlp_only_layers))


def qwen3(name: str, moe: bool, **sizes: Any) -> SyntheticSpec:
    """A spec with the published Qwen3 rope theta, norm eps and context length unless `sizes` says otherwise."""
    published = dict(rope_theta=1_000_000.0, rms_norm_eps=1e-6, max_position_embeddings=40960)
    architecture = ARCHITECTURES["qwen3_moe" if moe else "qwen3"]
    return SyntheticSpec(name, ModelConfig(architecture=architecture, **{**published, **sizes}))


SYNTHETIC_MODELS = {spec.name: spec for spec in (
    # A CPU forward of 16 tokens in milliseconds; tied like Qwen3-0.6B.
    qwen3("tiny", moe=False, vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True),
    # 8 experts, top 2: with 16 tokens every expert is hit by several; untied like Qwen3-30B-A3B.
    qwen3("tiny-moe", moe=True, vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False,
          num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True),
    # The published configurations (GPU use; `layers` shortens them).
    qwen3("0.6b", moe=False, vocab_size=151936, hidden_size=1024, intermediate_size=3072,
          num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
          tie_word_embeddings=True),
    qwen3("8b", moe=False, vocab_size=151936, hidden_size=4096, intermediate_size=12288,
          num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
          tie_word_embeddings=False),
    qwen3("30b-a3b", moe=True, vocab_size=151936, hidden_size=2048, intermediate_size=6144,
          num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
          tie_word_embeddings=False, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
          norm_topk_prob=True),
    qwen3("32b", moe=False, vocab_size=151936, hidden_size=5120, intermediate_size=25600,
          num_hidden_layers=64, num_attention_heads=64, num_key_value_heads=8, head_dim=128,
          tie_word_embeddings=False),
    # 94 layers of 128 experts: 470 GB in bf16; run with --layers (4 layers: about 23 GB).
    qwen3("235b-a22b", moe=True, vocab_size=151936, hidden_size=4096, intermediate_size=12288,
          num_hidden_layers=94, num_attention_heads=64, num_key_value_heads=4, head_dim=128,
          tie_word_embeddings=False, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=1536,
          norm_topk_prob=True),
)}


def checkpoint_dir(name: str, seed: int, dtype: torch.dtype, root: str | Path | None = None,
                   layers: int | None = None) -> Path:
    """<root>/checkpoints/<name>-s<seed>-<dtype>[-l<layers>]."""
    short = _dtype(dtype).short
    suffix = f"-l{layers}" if layers is not None else ""
    return Path(root if root is not None else cache_dir()) / "checkpoints" / f"{name}-s{seed}-{short}{suffix}"


def synthetic_checkpoint(name: str, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                         root: str | Path | None = None, layers: int | None = None) -> Path:
    """The directory of synthetic model `name` (see SYNTHETIC_MODELS), written on first use."""
    if name not in SYNTHETIC_MODELS:
        raise ValueError(f"unknown synthetic model {name!r}; expected one of {', '.join(SYNTHETIC_MODELS)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    spec = SYNTHETIC_MODELS[name].shortened(layers)
    full = spec == SYNTHETIC_MODELS[name]  # `layers` equal to the full count names the full model's directory
    target = checkpoint_dir(name, seed, dtype, root, None if full else layers)
    if _complete(target):
        return target
    check_transformers_version()  # the checkpoint is written through transformers' classes
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write(spec, seed, dtype, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not _complete(target):  # not another writer that finished first
                raise CheckpointError(f"{target}: exists but is not a complete checkpoint; remove it") from None
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _complete(directory: Path) -> bool:
    return (directory / CONFIG_FILE).is_file() and weights_present(directory)


def _dtype(dtype: torch.dtype) -> DType:
    for member in FLOAT_DTYPES:
        if member.torch == dtype:
            return member
    raise ValueError(f"dtype {dtype} is not one of {', '.join(str(m.torch) for m in FLOAT_DTYPES)}")


def _meta_model(spec: SyntheticSpec, seed: int, dtype: torch.dtype) -> Any:
    """The transformers model of `spec` on the `meta` device, in `dtype` (no memory)."""
    from transformers import Qwen3ForCausalLM, Qwen3MoeForCausalLM

    _dtype(dtype)
    with torch.random.fork_rng(devices=[]):  # whatever transformers draws while building stays in here
        torch.manual_seed(seed)
        with torch.device("meta"):
            model = (Qwen3MoeForCausalLM if spec.config.is_moe else Qwen3ForCausalLM)(spec.hf_config())
    return model.to(dtype)


def _model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _write(spec: SyntheticSpec, seed: int, dtype: torch.dtype, directory: Path) -> None:
    """The checkpoint into `directory`: by transformers' save_pretrained when the model fits in host memory
    comfortably, else a tensor at a time (tensor_writer.py, the same files): host memory then holds a few
    4 GB shards, whatever the model's size."""
    meta = _meta_model(spec, seed, dtype)
    if _model_bytes(meta) <= IN_MEMORY_BYTES:
        _build(spec, seed, dtype).save_pretrained(directory, safe_serialization=True, max_shard_size=SHARD_SIZE)
    else:
        write_by_tensor(meta, dtype, lambda tensor, name: _fill(tensor, f"{spec.name}:{seed}:{name}"), directory,
                        SHARD_BYTES, workers=os.cpu_count() or 1)


def _build(spec: SyntheticSpec, seed: int, dtype: torch.dtype) -> Any:
    """The transformers model with seeded weights, allocated once, in `dtype`: built on `meta`, then filled."""
    model = _meta_model(spec, seed, dtype).to_empty(device="cpu")
    model.tie_weights()  # to_empty gave the tied head its own storage; share the embedding again
    with torch.no_grad():
        for name, parameter in model.named_parameters():  # a tied head is listed once, as the embedding
            _fill(parameter, f"{spec.name}:{seed}:{name}")
    # Non-persistent buffers (the rotary inverse frequencies) are uninitialised: this model is only saved.
    return model


def _fill(parameter: torch.Tensor, key: str) -> None:
    """Each tensor draws from its own stream, seeded by `model:seed:tensor name`: a shortened model is the
    full one's first layers, and a tensor does not change when another is added or resized."""
    kind, gain = _initialiser(key)
    digest = hashlib.sha256(key.encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    rows = parameter.view(-1, parameter.shape[-1])
    step = max(1, CHUNK_ELEMENTS // rows.shape[1])
    for start in range(0, rows.shape[0], step):
        chunk = torch.randn((min(step, rows.shape[0] - start), rows.shape[1]), generator=generator)
        if kind == "norm":
            chunk = gain * torch.exp(NORM_SPREAD * chunk)
        else:
            chunk = chunk * (gain / math.sqrt(parameter.shape[-1]))
        rows[start:start + chunk.shape[0]].copy_(chunk)


def _initialiser(name: str) -> tuple[str, float]:
    for suffix, kind, gain in INITIALISERS:
        if name.endswith(suffix):
            return kind, gain
    raise ValueError(f"no initialiser for parameter {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.model.synthetic",
                                     description="Write (or find) a synthetic Qwen3 checkpoint; print its directory.")
    parser.add_argument("--name", required=True, choices=list(SYNTHETIC_MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="bf16", help="f32, f16 or bf16")
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N layers")
    parser.add_argument("--root", default=None, help="cache root (default $QWEN3_HARNESS_CACHE or ~/.cache/...)")
    args = parser.parse_args(argv)
    try:
        dtype = DType.parse(args.dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype {args.dtype!r} is not a float dtype")
        path = synthetic_checkpoint(args.name, args.seed, dtype.torch, args.root, args.layers)
    except (ValueError, CheckpointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
