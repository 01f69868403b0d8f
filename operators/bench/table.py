"""The benchmark's one table: for every operator, its kind (and so its target), the sweep and builder
of its workloads, its PyTorch baselines and whether torch.compile of them is timed too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from operators.bench import builders, torch_baselines
from operators.bench.shapes import Shapes, Sweep
from operators.bench.targets import Kind, Target, target_for
from operators.bench.torch_baselines import Baseline
from operators.bench.workload import Tensors, Workload


@dataclass(frozen=True)
class BenchEntry:
    kind: Kind
    sweep: Sweep
    build: Callable[[Shapes, int, bool], list[Workload]]  # the workloads at one point of the sweep
    baselines: Callable[[Tensors, Mapping[str, Any]], dict[str, Baseline]]
    vs_production: float | None = None  # Kind.PRODUCTION: the fraction of the production kernel's speed
    compiled: bool = False  # torch.compile of each baseline timed too, at the large shapes

    def __post_init__(self) -> None:
        if (self.vs_production is not None) != (self.kind is Kind.PRODUCTION):
            raise ValueError("a ratio of the production kernel's speed is the target of, and only of, Kind.PRODUCTION")

    def target(self, large: bool) -> Target | None:
        return target_for(self.kind, self.vs_production, large)


def bench_table() -> dict[str, BenchEntry]:
    memory, production, untargeted = Kind.MEMORY_BOUND, Kind.PRODUCTION, Kind.UNTARGETED
    tokens, prefill, decode, sampling = Sweep.TOKENS, Sweep.PREFILL, Sweep.DECODE, Sweep.SAMPLING
    b, t = builders, torch_baselines
    return {
        "embedding": BenchEntry(memory, tokens, b.embedding, t.embedding),
        "rms_norm": BenchEntry(memory, tokens, b.rms_norm, t.rms_norm, compiled=True),
        "add_rms_norm": BenchEntry(memory, tokens, b.add_rms_norm, t.add_rms_norm, compiled=True),
        "linear": BenchEntry(production, tokens, b.linear, t.linear, vs_production=0.9),
        "rope": BenchEntry(memory, tokens, b.rope, t.rope, compiled=True),
        "swiglu": BenchEntry(memory, tokens, b.swiglu, t.swiglu, compiled=True),
        "softmax": BenchEntry(memory, tokens, b.softmax, t.softmax, compiled=True),
        "causal_softmax": BenchEntry(memory, prefill, b.causal_softmax, t.causal_softmax, compiled=True),
        # SDPA's flash backend is the bar for prefill; decode reads the whole cache, as SDPA does.
        "attention_prefill": BenchEntry(production, prefill, b.attention_prefill, t.attention_prefill,
                                        vs_production=0.7),
        "attention_decode": BenchEntry(production, decode, b.attention_decode, t.attention_decode, vs_production=0.9),
        "attention_decode_paged": BenchEntry(production, decode, b.attention_decode_paged, t.attention_decode_paged,
                                             vs_production=0.9),
        "kv_cache_write": BenchEntry(memory, tokens, b.kv_cache_write, t.kv_cache_write),
        "kv_cache_write_paged": BenchEntry(memory, tokens, b.kv_cache_write_paged, t.kv_cache_write_paged),
        "argmax": BenchEntry(untargeted, sampling, b.argmax, t.argmax),
        "random_sample": BenchEntry(untargeted, sampling, b.random_sample, t.random_sample),
        "moe_router": BenchEntry(untargeted, tokens, b.moe_router, t.moe_router),
        "moe_experts": BenchEntry(untargeted, tokens, b.moe_experts, t.moe_experts),
    }


def bench_entry(operator: str) -> BenchEntry:
    table = bench_table()
    if operator not in table:
        raise ValueError(f"operator '{operator}' has no benchmark entry (operators/bench/table.py)")
    return table[operator]


def baselines(operator: str, inputs: Tensors, attributes: Mapping[str, Any]) -> dict[str, Baseline]:
    """name -> zero-argument callable for one workload of the operator."""
    return bench_entry(operator).baselines(inputs, attributes)
