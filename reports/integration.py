"""The integration run's JSON document (kind and schema version, environment, config, results,
verdict) and its terminal tables (tabulate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from tabulate import tabulate

from operators.core.dtypes import DType
from operators.model.attribution import Attribution
from operators.model.compare import MODEL_BUDGET, PointResult
from operators.model.generate import Generation
from operators.model.integration import PrefillComparison
from reports.schemas import header


@dataclass(frozen=True)
class IntegrationResult:
    dtype: DType
    prefill: PrefillComparison
    generation: Generation | None
    attribution: list[Attribution] | None

    @property
    def passed(self) -> bool:
        return self.prefill.passed and (self.generation is None or self.generation.passed)

    def first_failure(self) -> str | None:
        failure = self.prefill.first_failure
        if failure is not None:
            return failure.where(self.dtype)
        if self.generation is not None and not self.generation.passed:
            decode = self.generation.decode
            return f"decode step logits, in {self.dtype.short}" + (" (NaN/Inf)" if decode and decode.non_finite else "")
        return None


def build_document(result: IntegrationResult, config: Mapping[str, Any], environment: Mapping[str, Any]) -> dict:
    failure = result.prefill.first_failure
    return {
        **header("qwen3-integration"),
        "environment": dict(environment),
        "config": dict(config),
        "verdict": "pass" if result.passed else "fail",
        "first_failure": result.first_failure(),
        "first_failing_point": None if failure is None else failure.to_json(),
        "budget": MODEL_BUDGET.to_json(),
        "points": [p.to_json() for p in result.prefill.points],
        "logits": result.prefill.logits.to_json(),
        "generation": None if result.generation is None else result.generation.to_json(),
        "attribution": None if result.attribution is None else [a.to_json() for a in result.attribution],
    }


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row(p: PointResult) -> list:
    return ["model" if p.layer is None else p.layer, p.point, _number(p.cosine, ".6f"), _number(p.rel_l2, ".3e"),
            _number(p.baseline_rel_l2, ".3e"), _number(p.error_ratio, ".2f"), _number(p.budget_use, ".2f"),
            "PASS" if p.passed else "FAIL"]


def points_table(points: list[PointResult], all_points: bool = False) -> str:
    """Every point, or per layer only the one nearest its budget, plus the first failure."""
    shown = points
    if not all_points:
        worst: dict[Any, PointResult] = {}
        for p in points:
            group = ("embedding" if p.point == "embedding" else "head") if p.layer is None else p.layer
            if group not in worst or p.budget_use > worst[group].budget_use:
                worst[group] = p
        first = next((p for p in points if not p.passed), None)
        keep = {id(p) for p in worst.values()} | ({id(first)} if first else set())
        shown = [p for p in points if id(p) in keep]
    headers = ["layer", "point", "cosine", "rel L2", "baseline rel L2", "error ratio", "budget use", "verdict"]
    return tabulate([_row(p) for p in shown], headers=headers, tablefmt="github", disable_numparse=True)


def summary_lines(result: IntegrationResult) -> list[str]:
    s = result.prefill.logits
    lines = [f"logits: cosine {s.cosine:.6f} (baseline {s.baseline_cosine:.6f}); KL mean {s.kl_mean:.3e} max "
             f"{s.kl_max:.3e} (baseline {s.baseline_kl_mean:.3e} / {s.baseline_kl_max:.3e}); top-1 "
             f"{s.top1_agreement:.2f} (baseline {s.baseline_top1_agreement:.2f}); top-5 overlap "
             f"{s.top5_overlap:.2f} (baseline {s.baseline_top5_overlap:.2f}); sampled token agrees "
             f"{s.sampled_agreement:.2f} (baseline {s.baseline_sampled_agreement:.2f})",
             f"prompt perplexity: ours {_number(s.perplexity, '.3f')}, transformers {result.dtype.short} "
             f"{_number(s.baseline_perplexity, '.3f')}, float64 {_number(s.reference_perplexity, '.3f')}"]
    g = result.generation
    if g is not None:
        agreement = ("identical" if g.first_difference is None else
                     f"first differ at step {g.first_difference}: ours top-5 {fmt_top(g.ours_top5)}, "
                     f"transformers top-5 {fmt_top(g.transformers_top5)}")
        lines.append(f"greedy {len(g.ours)} steps vs transformers {result.dtype.short}: {agreement}")
        lines.append(f"  tokens: ours {g.ours}, transformers {g.transformers}, float64 {g.reference}")
        if g.decode is not None and g.decode.rel_l2 is None:  # not measured: non-finite logits, a shape
            lines.append(f"decode-step logits vs float64 prefill: FAIL: {'; '.join(g.decode.reasons)}")
        elif g.decode is not None:
            d = g.decode
            lines.append(f"decode-step logits vs float64 prefill: rel L2 {_number(d.rel_l2, '.3e')} (baseline "
                         f"{_number(d.baseline_rel_l2, '.3e')}), budget use {d.budget_use:.2f} "
                         f"{'PASS' if d.passed else 'FAIL'}; vs our own prefill: rel L2 "
                         f"{_number(g.decode_vs_prefill_rel_l2, '.3e')}")
    return lines


def fmt_top(top: list[tuple[int, float]] | None) -> str:
    return "-" if not top else ", ".join(f"{token}:{p:.3f}" for token, p in top)


def attribution_table(rows: list[Attribution]) -> str:
    """The run as it was, then each family from the control; and which one shrinks the logits error most."""
    best = rows[1] if len(rows) > 1 else None
    verdict = ("" if best is None or best.budget_use >= rows[0].budget_use else
               f"\nthe control's {best.family} shrinks the logits error most: budget use {rows[0].budget_use:.2f} -> "
               f"{best.budget_use:.2f}")
    body = [[a.family, _number(a.logits_rel_l2, ".3e"), _number(a.decode_rel_l2, ".3e"), _number(a.budget_use, ".2f"),
             a.first_failure or "none"] for a in rows]
    return tabulate(body, headers=["control replaces", "logits rel L2", "decode rel L2", "budget use", "first failure"],
                    tablefmt="github", disable_numparse=True) + verdict


def peak_text(document: Mapping[str, Any]) -> str:
    peak = document.get("peak_memory")
    if not peak:
        return ""
    device = "" if peak["device_gib"] is None else f", GPU {peak['device_gib']} GiB"
    return f" (peak host {peak['host_gib']} GiB{device})"


def integration_markdown(document: Mapping[str, Any], result: IntegrationResult, all_points: bool = False) -> str:
    """The markdown summary of an integration run, for a CI job page."""
    config = document["config"]
    lines = [f"# Qwen3 integration: {document['verdict'].upper()}", "",
             f"{config['architecture']} ({config['synthetic'] or config['model_dir']}), {config['dtype']}, backend "
             f"`{config['backend']}` on {config['device']}, {document['seconds']} s{peak_text(document)}", "",
             points_table(result.prefill.points, all_points), "",
             *[f"- {line}" for line in summary_lines(result)]]
    if result.attribution is not None:
        lines += ["", "## Attribution", "", attribution_table(result.attribution)]
    return "\n".join(lines) + "\n"
