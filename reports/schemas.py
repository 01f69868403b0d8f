"""One schema story for every JSON document the harness writes: each starts with its `kind` and the
`schema_version` of that kind, and a reader checks both before it reads anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

# kind -> version. History, per kind:
# operators 1.1: budget_use per output, max_budget_use per summary row; 1.2: the baseline ensemble per
#   output (baseline_source per budget check), unsupported cases and counts; 1.3: "kind" per contract
#   check ("dtype", or "value": an input value outside the contract), "coverage" (boundary classes and
#   regimes per operator); 1.4: the document's own "kind"; 1.5: "incomplete" {reason, steps_not_run} and
#   the verdict "incomplete" for a run stopped early (SIGTERM, Ctrl-C, too many kernel calls that did
#   not return), config.kernel_timeout; with --baseline, "drift" {baseline, regressed, cases_matched,
#   new_failures, drifted, missing_pairs, environment_changes}; environment.host, .command, .written (every
#   document kind: added fields, versions unchanged for the others).
# operators 2.0: each case stored once: a case row keeps `case` (shapes, dtypes, layouts, attributes,
#   regime, seed) and drops its copies and `repro` (the replay line is built from case, backend and
#   device); the budget moves to the document's `budgets` {operator: budget}; rows one per line.
#   Readers take 1.x too (a baseline made before).
# qwen3-integration 1.0, benchmark 1.0, panel 1.0: as first written. benchmark 1.1: each row's timings
# (method, spread, calls, repetitions per candidate). qwen3-integration 1.1: peak_memory (host, device).
VERSIONS = {"operators": "2.0", "qwen3-integration": "1.1", "benchmark": "1.1", "panel": "1.0"}
READABLE_MAJORS = {"operators": ("1", "2")}  # a kind's older majors its readers still take


class DocumentKindError(ValueError):
    """A JSON document that is not of the kind a reader expects."""


def header(kind: str) -> dict[str, str]:
    """The first two fields of a document of this kind."""
    return {"schema_version": VERSIONS[kind], "kind": kind}


def require_kind(document: Any, kind: str, source: str | Path) -> Mapping[str, Any]:
    """The document, if it is a `kind` document of a major version this harness reads."""
    if not isinstance(document, dict) or document.get("kind") != kind:
        found = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise DocumentKindError(f"{source}: not a {kind} document (kind: {found!r})")
    major = str(document.get("schema_version", "")).split(".")[0]
    readable = READABLE_MAJORS.get(kind, (VERSIONS[kind].split(".")[0],))
    if major not in readable:
        raise DocumentKindError(f"{source}: {kind} schema {document.get('schema_version')!r}; this harness reads "
                                + " and ".join(f"{m}.x" for m in readable))
    return document
