"""Tables of a report for the terminal (tabulate)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from tabulate import tabulate

from operators.core.contract import ContractResult


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
        kind = "value" if c.kind == "value" else "allowed" if c.allowed else "rejected"
        row[kind] += 1
        row[f"{kind}_ok"] += c.passed
        row[f"{kind}_unsupported"] += c.unsupported

    def cell(row, kind):
        refused = row[kind + "_unsupported"]
        shown = f"{row[kind + '_ok'] - refused}/{row[kind]}" + (f" ({refused} unsupported)" if refused else "")
        return shown if row[kind] else "-"

    rows = [[op, cell(r, "allowed"), cell(r, "rejected"), cell(r, "value"),
             "PASS" if all(r[f"{k}_ok"] == r[k] for k in ("allowed", "rejected", "value")) else "FAIL"]
            for op, r in counts.items()]
    return tabulate(rows, headers=["operator", "allowed dtype combos computed", "disallowed combos rejected",
                                   "bad values refused", "verdict"], tablefmt="github")


def support_table(results: Iterable[Any]) -> str:
    """Per operator, dtype combination and layouts: how many cases the kernel computed and how many it
    refused as unsupported, for the operators with any refusal (CaseResult objects)."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    refusing = {r.case.operator for r in results if r.verdict.value == "unsupported"}
    for r in results:
        if r.case.operator in refusing:
            tensors = {**r.case.inputs, **r.case.outputs}
            layouts = " ".join(f"{n}={t.layout.value}" for n, t in tensors.items() if t.layout.value != "contiguous")
            counts[(r.case.operator, r.case.dtype_label(), layouts or "all contiguous")][
                r.verdict.value == "unsupported"] += 1
    rows = [[op, dtypes, layouts, computed, refused] for (op, dtypes, layouts), (computed, refused)
            in sorted(counts.items())]
    return tabulate(rows, headers=["operator", "dtypes", "layouts", "computed", "refused (unsupported)"],
                    tablefmt="github")
