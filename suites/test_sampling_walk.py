"""The judge's set of acceptable sampling positions, computed per position, equals the union of
every prefix end's walk taken one end at a time (the definition), on distributions whose tails
put thousands of ends within the float32 tolerance."""

import pytest
import torch

from operators.random_sample import FLOAT32_EPS, acceptable_tokens, walk_positions, within_any


def walk_one_end_at_a_time(cumulative, before, tolerance, ends, r) -> list[int]:
    accepted: set[int] = set()
    for end in ends.tolist():
        target = r * cumulative[end]
        hit = (cumulative[: end + 1] > target - tolerance[: end + 1]) & (before[: end + 1] <= target + tolerance[: end + 1])
        accepted.update(torch.nonzero(hit).flatten().tolist() or [end])
    return sorted(accepted)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("spread", [1.0, 8.0, 40.0])
def test_walk_positions_match_the_definition(seed, spread):
    generator = torch.Generator().manual_seed(seed)
    vocab = int(torch.randint(2, 3000, (1,), generator=generator))
    logits = torch.randn(vocab, generator=generator, dtype=torch.float64) * spread
    if seed % 3 == 0:
        logits[: vocab // 2] = logits[0]  # long runs of equal probability
    probs = torch.sort(torch.softmax(logits, dim=0), descending=True).values
    cumulative = torch.cumsum(probs, dim=0)
    tolerance = 2 * (torch.arange(vocab, dtype=torch.float64) + 32) * FLOAT32_EPS * cumulative[-1] * (1 + seed)
    before = torch.cat((cumulative.new_zeros(1), cumulative[:-1]))
    for top_p in (0.3, 0.8, 1.0):
        threshold = top_p * cumulative[-1]
        ends = torch.nonzero((cumulative >= threshold - tolerance) & (before < threshold + tolerance)).flatten()
        for r in (0.0, float(torch.rand(1, generator=generator)), 0.9999):
            assert walk_positions(cumulative, before, tolerance, ends, r) == \
                walk_one_end_at_a_time(cumulative, before, tolerance, ends, r)


@pytest.mark.parametrize("seed", range(8))
def test_ties_by_ranges_match_pairwise_comparison(seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.sort(torch.rand(500, generator=generator, dtype=torch.float64).round(decimals=2), descending=True).values
    centres = values[torch.randint(0, 500, (40,), generator=generator)]
    radii = torch.rand(40, generator=generator, dtype=torch.float64) * 0.02
    pairwise = ((values[:, None] - centres[None, :]).abs() <= radii[None, :]).any(dim=1)
    assert torch.equal(within_any(values, centres, radii), pairwise)


def test_top_k_that_keeps_the_tokens_tied_with_the_kth_is_accepted_and_ignoring_top_k_is_not():
    """transformers' TopKLogitsWarper keeps every token tied with the k-th: with logits 3, 2, 1, 1, 1, 0
    and k = 3 it keeps five, and the walk at 0.9999 ends on token 4; keeping exactly three ends on
    token 2. Both are correct; token 5 (top-k ignored) is not."""
    logits = torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0, 0.0])
    accepted = acceptable_tokens(logits, 0.9999, 1.0, 3, 1.0)
    assert {2, 4} <= accepted and 5 not in accepted
    assert acceptable_tokens(logits, 0.9999, 1.0, 4, 1.0) >= {3, 4} and 5 not in acceptable_tokens(logits, 0.9999, 1.0, 4, 1.0)


def test_top_p_keeps_the_token_that_crosses_it_and_not_the_next():
    """Probabilities 0.5, 0.3, 0.2: top_p 0.79 keeps two tokens (0.8 reaches it), so the walk at
    0.9999 ends on token 1; top_p 0.81 keeps all three and it ends on token 2."""
    logits = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log()
    assert acceptable_tokens(logits, 0.9999, 1.0, 0, 0.79) == {1}
    assert acceptable_tokens(logits, 0.9999, 1.0, 0, 0.81) == {2}


def test_a_top_p_boundary_inside_a_tie_group_may_keep_any_member_and_nothing_below_it():
    """Eight equal logits, top_p 0.3: three tokens are kept, which three is the sort's choice (a kernel
    ordering ties by higher id keeps 7, 6, 5). With logits 1, 1, 1, 0, ... the boundary falls in the
    group of ones: any of them may end the walk at 0.9999, a token of logit 0 may not."""
    assert acceptable_tokens(torch.zeros(8), 0.9999, 1.0, 0, 0.3) == set(range(8))
    assert acceptable_tokens(torch.zeros(8), 0.0, 1.0, 0, 0.3) == set(range(8))
    logits = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert acceptable_tokens(logits, 0.9999, 1.0, 0, 0.3) == {0, 1, 2}
