"""The C library gives the same values whatever OpenMP's thread count: a softmax row long enough to be
split over the threads (fewer rows than threads) equals the single thread's, bit for bit."""

import os
import subprocess
import sys

import pytest
import torch

from operators.core.device import Device

SOFTMAX_OUTPUTS = """
import sys, torch
from operators.backends import load_backend
from operators.core.device import Device
kernel = load_backend("native", Device.CPU).kernel("softmax")
generator = torch.Generator().manual_seed(0)
outputs = []
for rows, cols, dtype in [(1, 151936, torch.float32), (1, 151936, torch.bfloat16), (2, 40000, torch.float16),
                          (1, 100003, torch.float32)]:
    x = (torch.randn(rows, cols, generator=generator) * 5).to(dtype)
    x[0, 7] = float("-inf")
    out = torch.empty_like(x)
    kernel(out=out, x=x)
    outputs.append(out)
torch.save(outputs, sys.argv[1])
"""


def test_a_long_softmax_row_split_over_threads_equals_one_threads(harness, tmp_path):
    if harness.device is not Device.CPU:
        pytest.skip("the C library's threads")
    results = {}
    for threads in (1, 3):
        path = tmp_path / f"softmax-{threads}.pt"
        subprocess.run([sys.executable, "-c", SOFTMAX_OUTPUTS, str(path)], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        results[threads] = torch.load(path)
    assert [torch.equal(a, b) for a, b in zip(results[1], results[3])] == [True] * 4
