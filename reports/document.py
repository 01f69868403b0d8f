"""The versioned JSON report: environment, configuration, every case, contract checks, summary."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from operators.core.contract import ContractResult
from operators.core.result import CaseResult, Verdict
from reports.coverage import coverage_summary
from reports.schemas import header



def summarize(results: Iterable[CaseResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """operator -> working dtype -> counts and extremes, with the dtype combinations seen."""
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for result in results:
        groups[(result.case.operator, result.case.dtype.short)].append(result)
    summary: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (operator, dtype), rows in groups.items():
        cosines = [r.min_cosine for r in rows if r.min_cosine is not None]
        ratios = [r.max_error_ratio for r in rows if r.max_error_ratio is not None]
        uses = [r.max_budget_use for r in rows if r.max_budget_use is not None]
        ulps = [r.max_ulp for r in rows if r.max_ulp is not None]
        combinations: dict[str, dict[str, int]] = defaultdict(lambda: {"cases": 0, "passed": 0})
        for r in rows:
            combinations[r.case.dtype_label()]["cases"] += 1
            combinations[r.case.dtype_label()]["passed"] += r.passed
        passed = sum(r.passed for r in rows)
        failed = sum(r.verdict is Verdict.FAIL for r in rows)
        summary[operator][dtype] = {
            "cases": len(rows),
            "passed": passed,
            "unsupported": len(rows) - passed - failed,
            "min_cosine": min(cosines, default=None),
            "max_error_ratio": max(ratios, default=None),
            "max_budget_use": max(uses, default=None),
            "max_ulp": max(ulps, default=None),
            "verdict": "fail" if failed else "pass" if passed else "unsupported",
            "combinations": dict(combinations),
        }
    return dict(summary)


def build_document(results: list[CaseResult], contract: list[ContractResult], config: Mapping[str, Any],
                   environment: Mapping[str, Any], incomplete: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`incomplete`: why the run stopped before its last step (then the verdict is "fail" when a
    finished step failed, else "incomplete", never "pass")."""
    failed = [r for r in results if r.verdict is Verdict.FAIL] + [c for c in contract if not c.passed]
    return {
        **header("operators"),
        "environment": dict(environment),
        "config": dict(config),
        "verdict": "fail" if failed else ("incomplete" if incomplete else "pass"),
        **({"incomplete": dict(incomplete)} if incomplete else {}),
        "summary": summarize(results),
        "coverage": coverage_summary(results),
        "budgets": budgets(results),
        "contract": [c.to_json() for c in contract],
        "cases": [r.to_json() for r in results],
    }


def budgets(results: Iterable[CaseResult]) -> dict[str, dict[str, Any]]:
    """operator -> its error budget (one per operator spec, so stored once, not per case)."""
    by_operator: dict[str, dict[str, Any]] = {}
    for result in results:
        budget = by_operator.setdefault(result.case.operator, result.budget.to_json())
        if budget != result.budget.to_json():
            raise ValueError(f"{result.case.operator}: cases judged against two budgets in one run")
    return by_operator


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class ReportPathError(ValueError):
    """A report path that cannot be written (a directory, an unwritable folder)."""


def check_report_path(path: Path) -> None:
    """Before any case runs: the report can be written there (its folder is created if missing).
    A device node or FIFO is written through (`/dev/null` discards the report), never replaced."""
    path = Path(path)
    if path.is_dir():
        raise ReportPathError(f"cannot write the report to '{path}': it is a directory")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):
            raise ReportPathError(f"cannot write the report to '{path}': no write permission")
        return
    directory = path.resolve().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportPathError(f"cannot write the report to '{path}': its folder cannot be created "
                              f"({error.strerror})") from None
    if not os.access(directory, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ReportPathError(f"cannot write the report to '{path}': no write permission")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomically(path: Path, text: str) -> None:
    """A regular file is replaced atomically (a reader sees the old file or the whole new one) with
    the mode the umask gives; a device node or FIFO is written through, never replaced."""
    path = Path(path)
    if path.exists() and not path.is_file():
        with open(path, "w") as stream:
            stream.write(text)
        return
    directory = path.resolve().parent
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def json_text(document: Mapping[str, Any]) -> str:
    """Indented, except that each row of a top-level list of objects (cases, contract checks, points)
    takes one line: a report of thousands of cases stays small and greps by case."""
    fields = []
    for key, value in _clean(document).items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            rows = ",\n".join("  " + json.dumps(item, separators=(",", ":"), allow_nan=False) for item in value)
            text = "[\n" + rows + "\n ]"
        else:  # as json.dumps(document, indent=1) lays it out (JSON strings hold no raw newline)
            text = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
        fields.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n" if fields else "{}\n"


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    write_text_atomically(path, json_text(document))
