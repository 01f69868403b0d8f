"""Goodness of fit of random_sample: over many uniform values, token frequencies follow the
temperature / top-k / top-p distribution. Pearson's chi-square test at a false-alarm rate of
1e-4: a correct sampler fails it once in 10,000 seeds; these seeds are fixed, so the run is
deterministic."""

import importlib

import pytest
import torch

from reference.sampling import sampling_distribution

pytestmark = pytest.mark.backend_under_test

FALSE_ALARM_RATE = 1e-4
DRAWS = 20_000
MIN_EXPECTED = 5  # Pearson's rule: bins expected to hold fewer counts are merged
SETTINGS = [(0.6, 20, 0.95), (0.7, 20, 0.8), (1.0, 0, 1.0), (1.5, 5, 0.5)]  # Qwen3's, and extremes


def expected_distribution(logits, temperature, top_k, top_p):
    probs, ids, kept = sampling_distribution(logits.double(), temperature, top_k, top_p)
    expected = torch.zeros_like(probs)
    expected[ids[:kept]] = probs[:kept] / probs[:kept].sum()
    return expected


def chi_square_p_value(counts, expected):
    """p-value of Pearson's statistic, small bins merged into one."""
    expected_counts = expected * counts.sum()
    large = expected_counts >= MIN_EXPECTED
    observed = torch.cat((counts[large], counts[~large].sum(dim=0, keepdim=True)))
    predicted = torch.cat((expected_counts[large], expected_counts[~large].sum(dim=0, keepdim=True)))
    unexpected = bool(((predicted == 0) & (observed > 0)).any())
    keep = predicted > 0
    statistic = ((observed[keep] - predicted[keep]) ** 2 / predicted[keep]).sum()
    freedom = max(int(keep.sum()) - 1, 1)
    p_value = torch.special.gammaincc(torch.tensor(freedom / 2, dtype=torch.float64), statistic / 2).item()
    return 0.0 if unexpected else p_value


def draw_tokens(kernel, device, logits, temperature, top_k, top_p, seed):
    randoms = torch.rand(DRAWS, generator=torch.Generator().manual_seed(seed)).to(device)
    out = torch.empty(DRAWS, dtype=torch.int64, device=device)
    kernel(out=out, logits=logits.expand(DRAWS, -1), random=randoms, temperature=temperature, top_k=top_k,
           top_p=top_p)
    return out.cpu()


def fit(kernel, device, setting, seed=0):
    temperature, top_k, top_p = setting
    logits = (torch.randn(64, generator=torch.Generator().manual_seed(seed + 1)) * 2).to(device)
    tokens = draw_tokens(kernel, device, logits[None], temperature, top_k, top_p, seed)
    counts = torch.bincount(tokens, minlength=logits.numel()).double()
    return chi_square_p_value(counts, expected_distribution(logits.cpu(), temperature, top_k, top_p))


@pytest.mark.parametrize("setting", SETTINGS, ids=[f"T{t}-k{k}-p{p}" for t, k, p in SETTINGS])
def test_token_frequencies_follow_the_distribution(harness, setting):
    kernel = harness.backend.kernel("random_sample")
    if kernel is None:
        pytest.skip(f"backend '{harness.backend.name}' has no random_sample")
    assert fit(kernel, harness.device.torch_device(), setting) >= FALSE_ALARM_RATE


def test_the_fit_catches_a_top_p_cut_on_the_wrong_side(harness):
    wrong = importlib.import_module("suites.wrong_kernels.random_sample_top_p_wrong_side").backend(harness.device)
    assert fit(wrong.kernel("random_sample"), harness.device.torch_device(), (0.7, 20, 0.8)) < FALSE_ALARM_RATE
