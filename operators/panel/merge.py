"""`python -m operators.panel.merge A.json B.json ... --output panel.json --markdown panel.md`:
one panel document from runs that judged disjoint (seed, operator) pairs (a long panel split over
several machines or calls, by seeds or by operators, or stopped part-way: a stopped run counts with
the pairs it finished). The runs must share device, profile, case counts, dtypes and members. The
merged panel is complete when the judged pairs fill every seed x operator the runs were asked for;
an incomplete one never passes (exit 1) and lists the missing pairs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from operators.core.exits import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, run_guarded
from operators.panel.document import panel_markdown, with_verdict
from operators.panel.tally import DETAILS_KEPT
from operators.core.registry import OPERATOR_NAMES
from reports.document import write_json
from reports.schemas import require_kind

SHARED = ("device", "profile", "examples", "dtypes", "members")


class MergeError(Exception):
    """Documents that cannot be merged; exit code 2."""


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge_groups(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple, dict[str, Any]] = {}
    for document in documents:
        for g in document["groups"]:
            key = (g["member"], g["operator"], g["dtype"], g["regime"])
            row = merged.setdefault(key, {**g, "cases": 0, "passed": 0, "failed": 0, "unsupported": 0,
                                          "max_budget_use": None, "seconds": 0.0})
            for count in ("cases", "passed", "failed", "unsupported"):
                row[count] += g[count]
            row["max_budget_use"] = _max(row["max_budget_use"], g["max_budget_use"])
            row["seconds"] = row.get("seconds", 0.0) + g.get("seconds", 0.0)  # absent in older documents
    return sorted(merged.values(), key=lambda r: (r["role"], r["member"], r["operator"], r["dtype"], r["regime"]))


def merge_wrong(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for document in documents:
        for w in document["wrong_kernels"]:
            row = merged.setdefault(w["member"], {**w, "cases": 0, "failed": 0, "caught_seeds": 0, "seeds": 0,
                                                  "max_budget_use": None, "expected_reason_seen": False})
            for count in ("cases", "failed", "caught_seeds", "seeds"):
                row[count] += w[count]
            row["contract_failures"] = max(row.get("contract_failures", 0), w.get("contract_failures", 0))
            row["max_budget_use"] = _max(row["max_budget_use"], w["max_budget_use"])
            row["expected_reason_seen"] |= w["expected_reason_seen"]
    return sorted(merged.values(), key=lambda r: r["member"])


def merge_unsupported(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str, str], int] = {}
    for document in documents:
        for u in document["unsupported"]:
            key = (u["member"], u["operator"], u["reason"])
            counts[key] = counts.get(key, 0) + u["cases"]
    return [{"member": m, "operator": op, "reason": reason, "cases": n} for (m, op, reason), n in sorted(counts.items())]


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    first = documents[0]
    for document in documents[1:]:
        different = [k for k in SHARED if document["config"][k] != first["config"][k]]
        if different:
            raise MergeError(f"the runs differ in {', '.join(different)}")
    pairs = [pair for d in documents for pair in judged_pairs(d)]
    shared = sorted({pair for pair in pairs if pairs.count(pair) > 1})
    if shared:
        raise MergeError(f"the runs judged the same seed and operator twice ({', '.join(f'seed {s} {o}' for s, o in shared[:4])}"
                         f"{' ...' if len(shared) > 4 else ''}); merge runs over disjoint seeds or operators")
    seeds = sorted({seed for d in documents for seed in d["config"]["seeds"]})
    operators = [op for op in OPERATOR_NAMES if any(op in d["config"]["operators"] for d in documents)]
    missing = [(seed, op) for seed in seeds for op in operators if (seed, op) not in set(pairs)]
    return with_verdict({
        **first,
        "config": {**first["config"], "seeds": seeds, "operators": operators,
                   "runs": [r for d in documents for r in config_runs(d)],
                   "command": [c for d in documents for c in commands(d)]},
        "environment": {**first["environment"], "runs": [e for d in documents for e in run_environments(d)]},
        "members": [{**m, "available": all(d["members"][i]["available"] for d in documents)}
                    for i, m in enumerate(first["members"])],
        "groups": merge_groups(documents),
        "false_alarms": [f for d in documents for f in d["false_alarms"]][:DETAILS_KEPT * len(documents)],
        "tested_failures": [f for d in documents for f in d["tested_failures"]][:DETAILS_KEPT * len(documents)],
        "wrong_kernels": merge_wrong(documents),
        "unsupported": merge_unsupported(documents),
        "seconds": round(sum(d.get("seconds", 0) for d in documents), 2),
        "judged": sorted(pairs),
        "missing": missing,
        "complete": not missing,
    })


def commands(document: dict[str, Any]) -> list[str]:
    """The command lines behind a document (several when it is itself a merge)."""
    command = document["config"]["command"]
    return [command] if isinstance(command, str) else list(command)


def config_runs(document: dict[str, Any]) -> list[dict[str, Any]]:
    """What each run behind a document was asked for (several when it is itself a merge)."""
    config = document["config"]
    return list(config["runs"]) if "runs" in config else [
        {"seeds": config["seeds"], "operators": config["operators"], "complete": document.get("complete", True)}]


def run_environments(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The environment of each run behind a document (several when it is itself a merge; merges
    written before every run's environment was listed left the first one out of `runs`)."""
    environment = document["environment"]
    if "runs" not in environment:
        return [environment]
    own = {k: v for k, v in environment.items() if k != "runs"}
    runs = list(environment["runs"])
    return runs if len(runs) == len(commands(document)) else [own, *runs]


def judged_pairs(document: dict[str, Any]) -> list[tuple[int, str]]:
    """The (seed, operator) pairs a run judged in full; documents from before the `judged` field
    were complete runs over their seeds x operators."""
    if "judged" in document:
        return [(seed, op) for seed, op in document["judged"]]
    if not document.get("complete", True):
        raise MergeError("a run that did not finish (complete: false) does not say which pairs it judged")
    return [(seed, op) for seed in document["config"]["seeds"] for op in document["config"]["operators"]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m operators.panel.merge", description=__doc__)
    p.add_argument("documents", nargs="+", type=Path, help="panel JSON documents over disjoint seeds")
    p.add_argument("--output", type=Path, required=True, help="the merged JSON document")
    p.add_argument("--markdown", type=Path, help="the merged tables as markdown")
    args = p.parse_args(argv)
    try:
        documents = [json.loads(path.read_text()) for path in args.documents]
        for document, path in zip(documents, args.documents):
            require_kind(document, "panel", path)
        merged = merge(documents)
    except (OSError, ValueError, KeyError, MergeError) as error:
        print(f"error: cannot merge: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_json(args.output, merged)
    markdown = panel_markdown(merged)
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    print(markdown)
    if merged["missing"]:
        print(f"merge: incomplete: {len(merged['missing'])} (seed, operator) pairs were not judged by any run: "
              + ", ".join(f"seed {s} {o}" for s, o in merged["missing"][:8]) + (" ..." if len(merged["missing"]) > 8 else ""),
              file=sys.stderr)
    return EXIT_PASS if merged["verdict"] == "pass" and not merged["missing"] else EXIT_FAIL


def cli() -> int:
    """The command: main() with exit codes by cause (operators/core/exits.py)."""
    return run_guarded("operators.panel.merge", main)


if __name__ == "__main__":
    sys.exit(cli())
