"""Tables of a report for the terminal (tabulate)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from tabulate import tabulate

from operators.contract import ContractResult


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    rows = []
    for operator, by_dtype in summary.items():
        for dtype, s in by_dtype.items():
            rows.append([operator, dtype, s["cases"], s["passed"], _number(s["min_cosine"], ".6f"),
                         _number(s["max_error_ratio"], ".2f"), _number(s.get("max_budget_use"), ".2f"),
                         _number(s["max_ulp"], ".1f"),
                         s["verdict"].upper()])
    headers = ["operator", "dtype", "cases", "passed", "min cosine", "max error ratio", "max budget use", "max ULP",
               "verdict"]
    return tabulate(rows, headers=headers, tablefmt="github")


def contract_table(contract: Iterable[ContractResult]) -> str:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in contract:
        row = counts[c.operator]
        row["allowed" if c.allowed else "rejected"] += 1
        row["allowed_ok" if c.allowed else "rejected_ok"] += c.passed
    rows = [[op, f"{r['allowed_ok']}/{r['allowed']}", f"{r['rejected_ok']}/{r['rejected']}",
             "PASS" if r["allowed_ok"] == r["allowed"] and r["rejected_ok"] == r["rejected"] else "FAIL"]
            for op, r in counts.items()]
    return tabulate(rows, headers=["operator", "allowed dtype combos computed", "disallowed combos rejected",
                                   "verdict"], tablefmt="github")
