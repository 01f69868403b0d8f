"""NeoX and GPT-J rope agree once the head dim is permuted: a kernel in the GPT-J layout is right
for Qwen3 only if the q/k projection rows were permuted this way."""

import pytest
import torch

from operators.backends import load_backend

HEAD_DIM = 64


def neox_to_gptj(x: torch.Tensor) -> torch.Tensor:
    """(x[0..h), x[h..2h)) -> interleaved (x[0], x[h], x[1], x[h+1], ...)."""
    half = x.shape[-1] // 2
    return torch.stack((x[..., :half], x[..., half:]), dim=-1).flatten(-2)


@pytest.mark.parametrize("backend_name", ["native", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gptj_on_permuted_input_is_neox(harness, backend_name, dtype):
    kernel = load_backend(backend_name, harness.device).kernel("rope")
    device = harness.device.torch_device()
    x = torch.randn(9, 3, HEAD_DIM, device=device).to(dtype)
    positions = torch.tensor([0, 5, 17, 4096, 3, 3, 131071, 1, 77], device=device)
    neox, gptj = torch.empty_like(x), torch.empty_like(x)
    kernel(out=neox, x=x, positions=positions, theta=1e6, layout="neox")
    kernel(out=gptj, x=neox_to_gptj(x).contiguous(), positions=positions, theta=1e6, layout="gptj")
    # The same pairs meet the same angles in the same arithmetic: equal to the bit.
    assert torch.equal(neox_to_gptj(neox), gptj)
    assert not torch.equal(neox, gptj)
