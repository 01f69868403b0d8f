"""Qwen3 / Qwen3-MoE forward made only of backend kernels (modeling_qwen3.Qwen3ForCausalLM, read top-down).

Torch only allocates outputs and takes views here; every number comes out of `backend.kernel(op)`.
One sequence (batch 1): the first call prefills the KV cache with attention_prefill, later calls append
with kv_cache_write and attend with attention_decode. `tap(layer, point, tensor)` sees each named point."""

from __future__ import annotations

from typing import Callable

import torch

from operators.backends.backend import Backend, BackendError
from operators.core.device import once_more_if_out_of_memory
from operators.core.exits import is_out_of_memory
from operators.core.kernel_errors import KernelError
from operators.model.errors import KernelCallError
from operators.model.weights import ModelWeights

Tap = Callable[[int | None, str, torch.Tensor], None]
OPERATORS = ("embedding", "rms_norm", "add_rms_norm", "linear", "rope", "kv_cache_write", "attention_prefill",
             "attention_decode", "swiglu", "moe_router", "moe_experts", "argmax", "random_sample")


def model_operators(weights: ModelWeights) -> tuple[str, ...]:
    """The operators this model's forward and generation call (swiglu for dense layers, the MoE pair
    for expert layers)."""
    experts = ["router" in layer for layer in weights.layers]
    unused = ({"moe_router", "moe_experts"} if not any(experts) else set()) | ({"swiglu"} if all(experts) else set())
    return tuple(op for op in OPERATORS if op not in unused)


def no_tap(layer: int | None, point: str, tensor: torch.Tensor) -> None:
    pass


class Qwen3Runner:
    def __init__(self, backend: Backend, weights: ModelWeights, max_tokens: int, poison: bool = True) -> None:
        """`poison`: outputs and caches start as NaN (ids as -1), so an element a kernel leaves unwritten
        or a cache slot read before it is written shows as non-finite, not as stale memory."""
        self.backend, self.weights, self.config = backend, weights, weights.config
        self.device, self.poison = weights.embedding.device, poison
        shape = (1, max_tokens, self.config.num_key_value_heads, self.config.head_dim)
        self.caches = [(self.empty(shape), self.empty(shape)) for _ in weights.layers]
        self.length = 0
        self.unsettled: set[Callable[[], None]] = set()  # kernels' settle since the last forward's end

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.weights.dtype
        if not self.poison:
            return torch.empty(shape, dtype=dtype, device=self.device)
        return torch.full(shape, float("nan") if dtype.is_floating_point else -1, dtype=dtype, device=self.device)

    def like(self, t: torch.Tensor) -> torch.Tensor:
        return self.empty(tuple(t.shape), t.dtype)

    def op(self, name: str, **tensors) -> None:
        kernel = self.backend.kernel(name)
        if kernel is None:
            raise BackendError(f"backend '{self.backend.name}' has no kernel for '{name}'")
        try:
            once_more_if_out_of_memory(lambda retried: kernel(**tensors), self.device)
            if kernel.settle is not None:
                self.unsettled.add(kernel.settle)
        except (Exception, SystemExit) as error:  # the code under test failed, as in operators.run
            if is_out_of_memory(error) or isinstance(error, KernelError):
                raise
            raise KernelCallError(name, error) from error

    def linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        out = self.empty((x.shape[0], weight.shape[0]))
        self.op("linear", out=out, x=x, weight=weight)
        return out

    def forward(self, ids: torch.Tensor, tap: Tap = no_tap) -> torch.Tensor:
        """Logits [T, vocab] of the T tokens `ids` that follow the ones already in the cache."""
        c, w = self.config, self.weights
        positions = torch.arange(self.length, self.length + ids.shape[0], device=self.device)
        hidden = self.empty((ids.shape[0], c.hidden_size))
        self.op("embedding", out=hidden, ids=ids.to(self.device), weight=w.embedding)
        tap(None, "embedding", hidden)
        residual, delta = hidden, None
        for index, layer in enumerate(w.layers):
            normed, residual = self.add_norm(residual, delta, layer["input_norm"], index - 1, tap)
            tap(index, "input_norm", normed)
            delta = self.attention(index, layer, normed, positions, tap)
            normed, residual = self.add_norm(residual, delta, layer["post_norm"], None)
            tap(index, "attention_residual", residual)
            tap(index, "post_norm", normed)
            delta = self.moe(index, layer, normed, tap) if "router" in layer else self.mlp(layer, normed)
            tap(index, "moe" if "router" in layer else "mlp", delta)
        normed, residual = self.add_norm(residual, delta, w.final_norm, len(w.layers) - 1, tap)
        tap(None, "final_norm", normed)
        logits = self.linear(normed, w.lm_head)
        tap(None, "logits", logits)
        self.length += ids.shape[0]
        self.settle()
        return logits

    def settle(self) -> None:
        """Raise an error a kernel of this forward reported after its call returned."""
        while self.unsettled:
            self.unsettled.pop()()

    def add_norm(self, residual: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor,
                 finished: int | None, tap: Tap = no_tap) -> tuple[torch.Tensor, torch.Tensor]:
        """(norm(residual + delta), residual + delta); the sum of the first layer's input is the embedding."""
        out, eps = self.like(residual), self.config.rms_norm_eps
        if delta is None:
            self.op("rms_norm", out=out, x=residual, weight=weight, eps=eps)
            return out, residual
        total = self.like(residual)
        self.op("add_rms_norm", out=out, sum=total, x=delta, residual=residual, weight=weight, eps=eps)
        if finished is not None:
            tap(finished, "output", total)
        return out, total

    def attention(self, index: int, layer, x: torch.Tensor, positions: torch.Tensor, tap: Tap) -> torch.Tensor:
        c, tokens = self.config, x.shape[0]
        heads = {"q": c.num_attention_heads, "k": c.num_key_value_heads, "v": c.num_key_value_heads}
        projected = {}
        for name, count in heads.items():
            projected[name] = self.linear(x, layer[name]).view(tokens, count, c.head_dim)
            tap(index, f"{name}_proj", projected[name])
        for name in ("q", "k"):
            normed = self.like(projected[name])
            self.op("rms_norm", out=normed, x=projected[name], weight=layer[f"{name}_norm"], eps=c.rms_norm_eps)
            tap(index, f"{name}_norm", normed)
            rotated = self.like(normed)
            self.op("rope", out=rotated, x=normed, positions=positions, theta=c.rope_theta, layout="neox")
            tap(index, f"rope_{name}", rotated)
            projected[name] = rotated
        q, k, v = projected["q"], projected["k"], projected["v"]
        k_cache, v_cache = self.caches[index]
        self.op("kv_cache_write", k_cache=k_cache, v_cache=v_cache, k=k[None], v=v[None], positions=positions[None])
        out, scale = self.like(q), c.head_dim ** -0.5
        if self.length == 0:
            self.op("attention_prefill", out=out, q=q, k=k, v=v, scale=scale)
        else:
            lengths = torch.tensor([self.length + tokens], device=self.device)
            self.op("attention_decode", out=out[None], q=q[None], k_cache=k_cache, v_cache=v_cache,
                    seq_lens=lengths, scale=scale)
        tap(index, "attention", out)
        projected_out = self.linear(out.view(tokens, -1), layer["o"])
        tap(index, "o_proj", projected_out)
        return projected_out

    def mlp(self, layer, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.linear(x, layer["gate"]), self.linear(x, layer["up"])
        hidden = self.like(gate)
        self.op("swiglu", out=hidden, gate=gate, up=up)
        return self.linear(hidden, layer["down"])

    def moe(self, index: int, layer, x: torch.Tensor, tap: Tap) -> torch.Tensor:
        top_k = self.config.num_experts_per_tok
        weights, ids = self.empty((x.shape[0], top_k)), self.empty((x.shape[0], top_k), torch.int64)
        self.op("moe_router", weights=weights, ids=ids, x=x, gate_weight=layer["router"], top_k=top_k,
                norm_topk_prob=self.config.norm_topk_prob)
        tap(index, "moe_ids", ids)
        tap(index, "moe_weights", weights)
        out = self.like(x)
        self.op("moe_experts", out=out, x=x, weights=weights, ids=ids, gate_up=layer["gate_up"],
                down=layer["experts_down"])
        return out

    def greedy(self, logits: torch.Tensor) -> torch.Tensor:
        """argmax of each row of logits [B, V] -> int64 [B]."""
        out = self.empty((logits.shape[0],), torch.int64)
        self.op("argmax", out=out, logits=logits)
        return out

    def sample(self, logits: torch.Tensor, random: torch.Tensor, temperature: float, top_k: int,
               top_p: float) -> torch.Tensor:
        out = self.empty((logits.shape[0],), torch.int64)
        self.op("random_sample", out=out, logits=logits, random=random.to(self.device, torch.float32),
                temperature=temperature, top_k=top_k, top_p=top_p)
        self.settle()
        return out

