"""Stateful checks of the decode path: prefill N tokens, then M one-token steps through the backend's
rope, cache-write and decode-attention kernels, must match one prefill of N + M tokens within the
attention budget; and a decode call must never read cache positions past a request's length."""

import math

import pytest
import torch

from operators.attention_prefill import spec as prefill_spec
from operators.core.dtypes import DType
from operators.core.metrics import budget_checks, error_metrics
from reference.attention import attention_prefill
from reference.rope import rope

pytestmark = pytest.mark.backend_under_test

HEADS, KV_HEADS, HEAD_DIM, THETA = 4, 2, 64, 1e6
BLOCK_SIZE = 16
STEPS = [(1, 3), (5, 4), (16, 17), (127, 3)]


def kernels(harness, *names):
    found = [harness.backend.kernel(name) for name in names]
    if any(k is None for k in found):
        pytest.skip(f"backend '{harness.backend.name}' lacks one of {names}")
    return found


class ContiguousCache:
    def __init__(self, harness, tokens, dtype, device):
        self.write, self.attend = kernels(harness, "kv_cache_write", "attention_decode")
        shape = (1, tokens, KV_HEADS, HEAD_DIM)
        self.k = torch.full(shape, math.nan, dtype=dtype, device=device)
        self.v = torch.full(shape, math.nan, dtype=dtype, device=device)

    def append(self, k, v, start):
        positions = torch.arange(start, start + k.shape[0], device=k.device)[None]
        self.write(k_cache=self.k, v_cache=self.v, k=k[None], v=v[None], positions=positions)

    def decode(self, q, length, scale):
        out = torch.empty_like(q)[None]
        lengths = torch.tensor([length], device=q.device)
        self.attend(out=out, q=q[None], k_cache=self.k, v_cache=self.v, seq_lens=lengths, scale=scale)
        return out[0]


class PagedCache:
    def __init__(self, harness, tokens, dtype, device):
        self.write, self.attend = kernels(harness, "kv_cache_write_paged", "attention_decode_paged")
        blocks = -(-tokens // BLOCK_SIZE)
        shape = (blocks + 3, BLOCK_SIZE, KV_HEADS, HEAD_DIM)
        self.k = torch.full(shape, math.nan, dtype=dtype, device=device)
        self.v = torch.full(shape, math.nan, dtype=dtype, device=device)
        self.table = torch.randperm(blocks + 3, generator=torch.Generator().manual_seed(tokens))[:blocks]
        self.table = self.table.to(device)[None]

    def append(self, k, v, start):
        positions = torch.arange(start, start + k.shape[0], device=k.device)
        slots = self.table[0, positions // BLOCK_SIZE] * BLOCK_SIZE + positions % BLOCK_SIZE
        self.write(k_cache=self.k, v_cache=self.v, k=k, v=v, slots=slots)

    def decode(self, q, length, scale):
        out = torch.empty_like(q)[None]
        lengths = torch.tensor([length], device=q.device)
        self.attend(out=out, q=q[None], k_cache=self.k, v_cache=self.v, block_table=self.table, seq_lens=lengths,
                    scale=scale)
        return out[0]


def rotate(harness, x, positions):
    (kernel,) = kernels(harness, "rope")
    out = torch.empty_like(x)
    kernel(out=out, x=x, positions=positions, theta=THETA, layout="neox")
    return out


@pytest.mark.parametrize("cache_kind", [ContiguousCache, PagedCache], ids=["contiguous", "paged"])
@pytest.mark.parametrize("prefill, steps", STEPS)
@pytest.mark.parametrize("dtype", [DType.F32, DType.BF16], ids=["f32", "bf16"])
def test_prefill_then_decode_steps_match_one_prefill(harness, cache_kind, prefill, steps, dtype):
    device, total, scale = harness.device.torch_device(), prefill + steps, HEAD_DIM ** -0.5
    generator = torch.Generator().manual_seed(prefill * 1000 + steps)
    q, k, v = (torch.randn(total, h, HEAD_DIM, generator=generator).to(device, dtype.torch)
               for h in (HEADS, KV_HEADS, KV_HEADS))
    positions = torch.arange(total, device=device)
    (prefill_kernel,) = kernels(harness, "attention_prefill")
    cache = cache_kind(harness, total, dtype.torch, device)

    chunk = slice(0, prefill)
    q_rot, k_rot = rotate(harness, q[chunk], positions[chunk]), rotate(harness, k[chunk], positions[chunk])
    cache.append(k_rot, v[chunk], 0)
    outputs = [torch.empty_like(q_rot)]
    prefill_kernel(out=outputs[0], q=q_rot, k=k_rot, v=v[chunk], scale=scale)
    for t in range(prefill, total):
        step = slice(t, t + 1)
        cache.append(rotate(harness, k[step], positions[step]), v[step], t)
        outputs.append(cache.decode(rotate(harness, q[step], positions[step]), t + 1, scale))
    incremental = torch.cat(outputs)

    def rotated(upcast, inputs):
        q_, k_, v_ = inputs
        return rope(q_, positions.cpu(), THETA, upcast=upcast), rope(k_, positions.cpu(), THETA, upcast=upcast), v_

    cpu = [t.cpu() for t in (q, k, v)]
    exact = rotated(torch.float64, [t.double() for t in cpu])
    reference = attention_prefill(*exact, scale, torch.float64)
    baseline = attention_prefill(*rotated(torch.float32, cpu), scale, torch.float32)
    spec = prefill_spec()
    checks = budget_checks(error_metrics(incremental, reference, dtype), error_metrics(baseline, reference, dtype),
                           spec.budget, dtype, spec.sensitivity(dict(zip("qkv", exact)), {"scale": scale}))
    assert all(c.passed for c in checks), "; ".join(c.describe() for c in checks if not c.passed)


@pytest.mark.parametrize("cache_kind", [ContiguousCache, PagedCache], ids=["contiguous", "paged"])
def test_decode_never_reads_past_the_length(harness, cache_kind):
    """Positions past the length hold 0 in one run and 1e4 in the other: the outputs are identical."""
    device, length, capacity = harness.device.torch_device(), 21, 40
    generator = torch.Generator().manual_seed(7)
    q = torch.randn(2, HEADS, HEAD_DIM, generator=generator).to(device)
    k, v = (torch.randn(length, KV_HEADS, HEAD_DIM, generator=generator).to(device) for _ in range(2))
    outputs = []
    for filler in (0.0, 1e4):
        cache = cache_kind(harness, capacity, torch.float32, device)
        cache.k.fill_(filler)
        cache.v.fill_(filler)
        cache.append(k, v, 0)
        outputs.append(cache.decode(q, length, HEAD_DIM ** -0.5))
    assert torch.isfinite(outputs[0]).all()
    assert torch.equal(outputs[0], outputs[1])
