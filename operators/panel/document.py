"""The panel's JSON document and its markdown tables."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Mapping

from tabulate import tabulate

from operators.panel.members import Role, Seated
from operators.panel.tally import Judgement, count_groups, failures_of, unsupported_reasons, wrong_kernel_rows
from reports.schemas import header


def build_panel_document(judgements: list[Judgement], seated: list[Seated], config: Mapping[str, Any],
                         environment: Mapping[str, Any], contract: Mapping[str, list[str]]) -> dict[str, Any]:
    """`contract`: the failed dtype-contract checks of each wrong kernel."""
    expected = {}
    for s in seated:
        if s.member.role is Role.WRONG:
            module = __import__(f"suites.wrong_kernels.{s.member.name}", fromlist=["EXPECTED_REASON"])
            expected[s.member.name] = module.EXPECTED_REASON
    return with_verdict({
        **header("panel"),
        "environment": dict(environment),
        "config": dict(config),
        "members": [{"name": s.member.name, "role": s.member.role.value, "available": s.backend is not None,
                     "reason": s.reason, "description": s.backend.description if s.backend else ""}
                    for s in seated],
        "groups": count_groups(judgements),
        "false_alarms": failures_of(judgements, Role.CORRECT),
        "tested_failures": failures_of(judgements, Role.TESTED),
        "wrong_kernels": wrong_kernel_rows(judgements, expected, dict(contract)),
        "unsupported": unsupported_reasons(judgements),
    })


def with_verdict(document: dict[str, Any]) -> dict[str, Any]:
    """Totals and verdict from the groups and wrong-kernel rows: pass when no correct member failed a
    case and every wrong kernel failed at every seed."""
    groups, wrong = document["groups"], document["wrong_kernels"]
    false_alarms = sum(g["failed"] for g in groups if g["role"] == Role.CORRECT.value)
    missed = [w["member"] for w in wrong if w["caught_seeds"] < w["seeds"]]
    document["totals"] = {"judgements": sum(g["cases"] for g in groups), "false_alarms": false_alarms,
                          "wrong_missed": len(missed),
                          "tested_failures": sum(g["failed"] for g in groups if g["role"] == Role.TESTED.value)}
    document["verdict"] = "pass" if not false_alarms and not missed else "fail"
    return document


def _cell(rows: list[Mapping[str, Any]]) -> str:
    cases = sum(r["cases"] for r in rows)
    checked = cases - sum(r["unsupported"] for r in rows)
    uses = [r["max_budget_use"] for r in rows if r["max_budget_use"] is not None]
    text = f"{sum(r['passed'] for r in rows)}/{checked}"
    if uses:
        text += f" ({max(uses):.2f})"
    if checked < cases:
        text += f" +{cases - checked}u"
    return text


def member_table(document: Mapping[str, Any]) -> str:
    """operator x dtype rows, one column per correct or tested member: passed/checked (max budget use)."""
    columns = [m["name"] for m in document["members"] if m["available"] and m["role"] != Role.WRONG.value]
    cells: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for g in document["groups"]:
        if g["member"] in columns:
            cells[(g["operator"], g["dtype"])][g["member"]].append(g)
    order = {op: i for i, op in enumerate(document["config"]["operators"])}
    rows = [[op, dtype, *(_cell(by_member[c]) if by_member.get(c) else "-" for c in columns)]
            for (op, dtype), by_member in sorted(cells.items(), key=lambda item: (order[item[0][0]], item[0][1]))]
    return tabulate(rows, headers=["operator", "dtype", *columns], tablefmt="github")


def member_seconds_table(document: Mapping[str, Any]) -> str:
    seconds: dict[str, float] = defaultdict(float)
    for g in document["groups"]:
        seconds[g["member"]] += g.get("seconds", 0.0)
    rows = sorted(seconds.items(), key=lambda item: -item[1])
    return tabulate([[member, f"{spent:.1f}"] for member, spent in rows], headers=["member", "seconds"],
                    tablefmt="github") if rows else "none"


def provenance(environment: Mapping[str, Any]) -> str:
    """Which commits and native library builds the runs behind a document used."""
    runs = environment.get("runs") or [environment]
    builds = Counter((str((r.get("harness") or {}).get("git_sha") or "?")[:7],
                      (r.get("native_library") or {}).get("build_hash", "-")) for r in runs)
    return "; ".join(f"commit {sha}, native build {build}: {n} run{'s' if n > 1 else ''}"
                     for (sha, build), n in builds.items())


def panel_markdown(document: Mapping[str, Any]) -> str:
    config, env, totals = document["config"], document["environment"], document["totals"]
    missing = document.get("missing") or []
    status = document["verdict"].upper() if document.get("complete", True) else \
        f"INCOMPLETE ({len(missing)} seed x operator pairs not judged; {document['verdict']} so far)" if missing else \
        f"INCOMPLETE (stopped before the end; {document['verdict']} so far)"
    lines = [f"# Verdict panel: {status}", "",
             *(f"`{command}`" for command in ([config["command"]] if isinstance(config["command"], str)
                                              else config["command"])), "",
             f"Device {config['device']} ({env.get('device', '')}), "
             f"torch {env.get('torch', '?')}, seeds {config['seeds']}, profile {config['profile']} "
             f"({config['examples']} cases per operator, dtype and seed), {document.get('seconds', '?')} s.", "",
             f"Runs: {provenance(env)}.", "",
             f"False alarms (a correct member failed): **{totals['false_alarms']}**; wrong kernels missed at some "
             f"seed: **{totals['wrong_missed']}**; failures of the kernels under test: {totals['tested_failures']}; "
             f"{totals['judgements']} judgements.", "",
             "## Members", ""]
    lines.append(tabulate([[m["name"], m["role"], "yes" if m["available"] else f"no: {m['reason']}", m["description"]]
                           for m in document["members"] if m["role"] != Role.WRONG.value],
                          headers=["member", "role", "on the panel", "what it is"], tablefmt="github"))
    lines += ["", "## Correct members and the kernels under test",
              "", "Each cell: cases passed / cases checked over all seeds (largest budget use; above 1 fails), "
              "`+Nu` cases the member refused as unsupported.", "", member_table(document), ""]
    alarms = [g for g in document["groups"] if g["role"] != Role.WRONG.value and g["failed"]]
    lines += ["## Failures by regime", ""]
    lines.append(tabulate([[g["member"], g["role"], g["operator"], g["dtype"], g["regime"], f"{g['failed']}/{g['cases']}",
                            "-" if g["max_budget_use"] is None else f"{g['max_budget_use']:.2f}"] for g in alarms],
                          headers=["member", "role", "operator", "dtype", "regime", "failed", "max budget use"],
                          tablefmt="github") if alarms else "none")
    lines += ["", "## Planted wrong kernels", ""]
    lines.append(tabulate([[w["member"], w["operator"], f"{w['caught_seeds']}/{w['seeds']}", f"{w['failed']}/{w['cases']}",
                            w.get("contract_failures", 0),
                            "-" if w["max_budget_use"] is None else f"{w['max_budget_use']:.3g}",
                            "yes" if w["expected_reason_seen"] else "no"] for w in document["wrong_kernels"]],
                          headers=["wrong kernel", "operator", "seeds caught", "cases failed", "contract checks failed",
                                   "max budget use", "expected reason seen"], tablefmt="github") if document["wrong_kernels"] else "none run")
    lines += ["", "## Time spent per member", "",
              "Seconds of each member's judgements (its calls and the checks of its outputs; drawing the cases "
              "and computing references and baselines is shared and not counted).", ""]
    lines.append(member_seconds_table(document))
    if document["unsupported"]:
        lines += ["", "## Unsupported cases", ""]
        lines.append(tabulate([[u["member"], u["operator"], u["cases"], u["reason"][:160]] for u in document["unsupported"]],
                              headers=["member", "operator", "cases", "reason"], tablefmt="github"))
    return "\n".join(lines)
