"""Greedy generation through our decode path (prefill, then one token at a time: kv_cache_write +
attention_decode) and through transformers' cached decode; where the tokens first differ, both top-5s;
and the budget check of our decode-step logits against a float64 full prefill of the same tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.backends.backend import Backend
from operators.core.metrics import error_metrics
from operators.model.compare import PointResult, compare_point
from operators.model.integration import Models, Recorder
from operators.model.next_token import top_tokens
from operators.model.transformers_side import greedy


@dataclass(frozen=True)
class Generation:
    prompt_tokens: int
    ours: list[int]
    transformers: list[int]  # transformers' own greedy decode in the working dtype, on the device
    reference: list[int]  # transformers' greedy decode in float64 on the CPU
    first_difference: int | None  # step where ours and transformers' (working dtype) first differ
    ours_top5: list[tuple[int, float]] | None  # (token, probability) at that step
    transformers_top5: list[tuple[int, float]] | None
    decode: PointResult | None  # our decode-step logits vs float64 prefill, budget vs transformers' prefill
    decode_vs_prefill_rel_l2: float | None  # our decode-step logits vs our own prefill of the same tokens

    @property
    def passed(self) -> bool:
        return self.decode is None or self.decode.passed

    def to_json(self) -> dict:
        decode = None if self.decode is None else self.decode.to_json()
        return {"prompt_tokens": self.prompt_tokens, "steps": len(self.ours), "ours": self.ours,
                "transformers": self.transformers, "reference": self.reference,
                "first_difference": self.first_difference,
                "ours_top5": self.ours_top5, "transformers_top5": self.transformers_top5, "decode": decode,
                "decode_vs_prefill_rel_l2": self.decode_vs_prefill_rel_l2}


def generate_ours(models: Models, backend: Backend, prompt: torch.Tensor,
                  steps: int) -> tuple[list[int], torch.Tensor, Recorder]:
    """(tokens, logits [steps, V] that chose them, recorder of every call's routing)."""
    runner, recorder = models.runner(backend, prompt.shape[0] + steps), Recorder()
    logits, tokens, rows = runner.forward(prompt, recorder), [], []
    for step in range(steps):
        rows.append(logits[-1].cpu())
        token = runner.greedy(logits[-1:])
        tokens.append(int(token.item()))
        if step < steps - 1:
            logits = runner.forward(token, recorder)
    return tokens, torch.stack(rows), recorder


def check_decode(models: Models, backend: Backend, prompt: torch.Tensor, tokens: list[int], rows: torch.Tensor,
                 recorder: Recorder) -> tuple[PointResult, float] | None:
    """Steps 1.. come from decode calls: judge them against full prefills of prompt + tokens[:-1]."""
    if len(tokens) < 2:
        return None
    sequence = torch.cat((prompt.cpu(), torch.tensor(tokens[:-1], dtype=prompt.dtype)))
    base, ref = models.transformers_points(sequence, recorder.chosen() or None)
    start = prompt.shape[0]
    base, ref = base[(None, "logits")][start:], ref[(None, "logits")][start:]
    decoded = rows[1:]
    result = compare_point((None, "decode_logits"), decoded, base, ref, models.dtype)
    ours_prefill = models.runner(backend, sequence.shape[0]).forward(sequence.to(models.weights.embedding.device))[start:]
    if not (torch.isfinite(decoded).all() and torch.isfinite(ours_prefill).all()):
        return result, float("inf")  # never "0.0 rel L2" between two NaN logit tables
    return result, error_metrics(decoded, ours_prefill.cpu(), models.dtype).rel_l2


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def generate(models: Models, backend: Backend, prompt: torch.Tensor, steps: int) -> Generation:
    tokens, rows, recorder = generate_ours(models, backend, prompt, steps)
    theirs, their_rows = greedy(models.baseline, prompt, steps)
    reference = greedy(models.reference, prompt, steps)[0].tolist()
    first = first_difference(tokens, theirs.tolist())
    checked = check_decode(models, backend, prompt, tokens, rows, recorder)
    return Generation(prompt.shape[0], tokens, theirs.tolist(), reference, first,
                      None if first is None else top_tokens(rows[first]),
                      None if first is None else top_tokens(their_rows[first]),
                      None if checked is None else checked[0], None if checked is None else checked[1])
