"""Drift between two operator reports of the same seed: new failures, cases whose budget use rose
beyond a noise margin, operator x dtype pairs that disappeared, and the environment differences that
may explain them. The same seed draws the same cases, so cases are matched by their case JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from tabulate import tabulate

from operators.core.case import Case
from operators.core.result import replay_line

RELATIVE_MARGIN = 0.5  # a case drifts when its budget use exceeds old * (1 + 0.5) + 0.02
ABSOLUTE_MARGIN = 0.02
LISTED = 10  # cases listed per kind; the table counts them all
DRAW_SETTINGS = ("device", "seed", "profile", "examples")  # what decides the cases a run draws
MODEL_SETTINGS = ("device", "dtype", "synthetic", "model_dir", "layers", "seed", "prompt_ids", "steps")
FAIL_ON = ("failures", "drift")  # --fail-on: new failures (and missing pairs) only, or drift as well
ENVIRONMENT_KEYS = (("harness",), ("torch",), ("transformers",), ("device",), ("platform",),
                    ("native_library", "build_hash"), ("backend", "module"), ("backend", "version"))


@dataclass
class Drift:
    environment: list[str] = field(default_factory=list)  # "torch: 2.13.0 -> 2.14.0"
    new_failures: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    missing_pairs: list[str] = field(default_factory=list)  # operator x dtype in the baseline, not in the run
    rows: list[list[Any]] = field(default_factory=list)  # per operator x dtype
    matched: int = 0
    unmatched: int = 0  # cases of the run the baseline does not have (other draws)
    incomparable: list[str] = field(default_factory=list)  # draw settings that differ: "seed: 0 -> 1"

    @property
    def nothing_compared(self) -> bool:
        """No case or point of the run is in the baseline (another seed, profile or model): nothing was checked."""
        return self.matched == 0

    def regressed(self, fail_on: str = "drift") -> bool:
        """Also when the baseline drew its cases otherwise: then most cases go uncompared, and a pass
        would say nothing."""
        return bool(self.incomparable or self.nothing_compared or self.new_failures or self.missing_pairs
                    or (fail_on == "drift" and self.drifted))

    def lines(self) -> list[str]:
        out = [f"environment: {change}" for change in self.environment]
        out += [f"not comparable: the baseline was made with another {change}" for change in self.incomparable]
        out.append(f"against the baseline: {self.matched} cases matched, {self.unmatched} new (not in the baseline)")
        if self.nothing_compared:
            out.append("nothing compared: no case of this run is in the baseline (another seed, profile or model?)")
        if self.rows:
            out.append(tabulate(self.rows, headers=["operator", "dtype", "cases", "baseline max use", "max use",
                                                    "drifted", "new failures"], tablefmt="github"))
        out += [f"missing: {pair} is in the baseline, not in this run" for pair in self.missing_pairs]
        for kind, lines in (("new failure", self.new_failures), ("drift", self.drifted)):
            out += [f"{kind}: {line}" for line in lines[:LISTED]]
            if len(lines) > LISTED:
                out.append(f"{kind}: ... and {len(lines) - LISTED} more cases")
        return out


def budget_use(case: Mapping[str, Any]) -> float | None:
    uses = [o["metrics"].get("budget_use") for o in case.get("outputs", {}).values()]
    uses = [u for u in uses if u is not None]
    return max(uses) if uses else None


def case_key(case: Mapping[str, Any]) -> str:
    return json.dumps(case["case"], sort_keys=True)


def environment_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = []
    for path in ENVIRONMENT_KEYS:
        before, after = old, new
        for key in path:
            before = before.get(key) if isinstance(before, Mapping) else None
            after = after.get(key) if isinstance(after, Mapping) else None
        if before != after:
            changes.append(f"{'.'.join(path)}: {before} -> {after}")
    return changes


def setting_changes(old: Mapping[str, Any], new: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The settings among `keys` that both documents' configs state and that differ."""
    before, after = old.get("config", {}), new.get("config", {})
    return [f"{key}: {before[key]} -> {after[key]}" for key in keys
            if key in before and key in after and before[key] != after[key]]


def compare(old: Mapping[str, Any], new: Mapping[str, Any], relative: float = RELATIVE_MARGIN,
            absolute: float = ABSOLUTE_MARGIN) -> Drift:
    drift = Drift(environment=environment_changes(old.get("environment", {}), new.get("environment", {})))
    drift.incomparable = setting_changes(old, new, DRAW_SETTINGS)
    baseline = {case_key(c): c for c in old["cases"]}
    pairs: dict[tuple[str, str], list[Any]] = {}
    for case in new["cases"]:
        before = baseline.get(case_key(case))
        if before is None:
            drift.unmatched += 1
            continue
        drift.matched += 1
        drawn = case["case"]
        label = f"{case['operator']} [{case['dtype_combination']}] seed {drawn['seed']} ({drawn['regime']})"
        row = pairs.setdefault((case["operator"], Case.from_json(case["case"]).dtype.short), [0, 0.0, 0.0, 0, 0])
        row[0] += 1
        old_use, new_use = budget_use(before), budget_use(case)
        row[1], row[2] = max(row[1], old_use or 0.0), max(row[2], new_use or 0.0)
        if case["verdict"] == "fail" and before["verdict"] != "fail":
            row[4] += 1
            drift.new_failures.append(f"{label}: {'; '.join(case['reasons'])[:300]}; reproduce: {replay_line(case)}")
        elif old_use is not None and new_use is not None and new_use > old_use * (1 + relative) + absolute:
            row[3] += 1
            drift.drifted.append(f"{label}: budget use {old_use:.3f} -> {new_use:.3f}; reproduce: {replay_line(case)}")
    drift.rows = [[op, dtype, n, f"{a:.3f}", f"{b:.3f}", d, f] for (op, dtype), (n, a, b, d, f) in pairs.items()]
    present = {(op, dtype) for op, by_dtype in new.get("summary", {}).items() for dtype in by_dtype}
    drift.missing_pairs = [f"{op} {dtype}" for op, by_dtype in old.get("summary", {}).items() for dtype in by_dtype
                           if (op, dtype) not in present]
    return drift



def add_drift_options(add) -> None:
    """The drift policy options of `operators.run --baseline` and `python -m reports.compare`."""
    add("--drift-margin", type=float, default=RELATIVE_MARGIN, metavar="R",
        help="a case drifts when its budget use exceeds the baseline's x (1 + R) + 0.02 (default %(default)s)")
    add("--fail-on", choices=FAIL_ON, default="drift",
        help="exit 1 on new failures and missing operator x dtype pairs only, or on drift as well (default)")


def load_baseline(path, kind: str = "operators") -> Mapping[str, Any]:
    """A `kind` document from `path`; OSError, ValueError (not JSON) or DocumentKindError otherwise."""
    from reports.schemas import require_kind
    with open(path, encoding="utf-8") as file:
        return require_kind(json.load(file), kind, path)


def compare_integration(old: Mapping[str, Any], new: Mapping[str, Any], relative: float = RELATIVE_MARGIN,
                        absolute: float = ABSOLUTE_MARGIN) -> Drift:
    """Two integration documents point by point, in model order: the first (layer, point) that drifted
    or newly failed is where a model-level drift started."""
    drift = Drift(environment=environment_changes(old.get("environment", {}), new.get("environment", {})),
                  incomparable=setting_changes(old, new, MODEL_SETTINGS))
    baseline = {(p["layer"], p["point"]): p for p in old.get("points", [])}
    for point in new.get("points", []):
        before = baseline.get((point["layer"], point["point"]))
        if before is None:
            drift.unmatched += 1
            continue
        drift.matched += 1
        where = f"{'model' if point['layer'] is None else 'layer ' + str(point['layer'])}, after {point['point']}"
        if not point["passed"] and before["passed"]:
            drift.new_failures.append(f"{where}: {'; '.join(point['reasons'])[:300]}")
        elif (point["budget_use"] is not None and before["budget_use"] is not None
              and point["budget_use"] > before["budget_use"] * (1 + relative) + absolute):
            drift.drifted.append(f"{where}: budget use {before['budget_use']:.3f} -> {point['budget_use']:.3f}")
    if old.get("verdict") == "pass" and new.get("verdict") == "fail" and not drift.new_failures:
        drift.new_failures.append(f"the run failed: {new.get('first_failure')}")
    return drift
