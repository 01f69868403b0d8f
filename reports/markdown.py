"""The markdown summary of an operators run, for a CI job page: the verdict, the tables, the first
failures with their replay lines, and the drift against the baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from operators.core.contract import ContractResult
from operators.core.result import CaseResult, Verdict
from reports.drift import Drift
from reports.tables import contract_table, summary_table, support_table

FAILURES_LISTED = 10


def run_markdown(document: Mapping[str, Any], results: Iterable[CaseResult], contract: Iterable[ContractResult],
                 drift: Drift | None, pictures: Iterable[Path] = ()) -> str:
    """`pictures` are linked relative to the markdown file's folder (config.markdown)."""
    results, contract = list(results), list(contract)
    environment, config = document["environment"], document["config"]
    regressed = bool(document.get("drift", {}).get("regressed"))
    lines = [f"# Qwen3 operators: {document['verdict'].upper()}" + (" (drift: REGRESSION)" if regressed else ""),
             "",
             f"backend `{config['backend']}` on {config['device']} ({device_name(environment)}), profile "
             f"`{config['profile']}`, seed {config['seed']}, torch {environment.get('torch')}, "
             f"{document['seconds']} s", ""]
    if document.get("incomplete"):
        lines += [f"**Incomplete**: {document['incomplete']['reason']}", ""]
    lines += ["## Accuracy", "", summary_table(document["summary"]), ""]
    if contract:
        lines += ["## Contract", "", contract_table(contract), ""]
    if any(r.verdict is Verdict.UNSUPPORTED for r in results):
        lines += ["## Support", "", support_table(results), ""]
    failures = [r for r in results if r.verdict is Verdict.FAIL]
    if failures:
        lines += [f"## Failures ({len(failures)}; the first {min(len(failures), FAILURES_LISTED)})", ""]
        for failure in failures[:FAILURES_LISTED]:
            lines += ["```", failure.describe_failure(), "```", ""]
    if drift is not None:
        lines += [f"## Drift against `{document['drift']['baseline']}`", "", *drift.lines(), ""]
    lines += picture_lines(pictures, config.get("markdown"))
    return "\n".join(lines)


def device_name(environment: Mapping[str, Any]) -> str:
    device = environment.get("device")
    return str(device.get("name", device.get("kind"))) if isinstance(device, Mapping) else str(device)


def picture_lines(pictures: Iterable[Path], markdown: str | None) -> list[str]:
    pictures = list(pictures)
    if not pictures:
        return []
    folder = Path(markdown).resolve().parent if markdown else Path.cwd()
    lines = ["## Pictures", ""]
    for picture in pictures:
        link = Path(os.path.relpath(Path(picture).resolve(), folder)).as_posix()
        lines += [f"![{Path(picture).stem}]({link})", ""]
    return lines
