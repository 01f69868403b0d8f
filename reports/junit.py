"""JUnit XML of an operators run, for CI test dashboards: one testcase per case (classname
`operator.dtype`) and per contract check; a failure's text holds its reasons and replay line, an
unsupported case is skipped with its reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping

from operators.core.contract import ContractResult
from operators.core.result import CaseResult, Verdict


def case_element(result: CaseResult) -> ET.Element:
    case = result.case
    element = ET.Element("testcase", classname=f"{case.operator}.{case.dtype.short}",
                         name=f"[{case.dtype_label()}] seed {case.seed} {case.regime.value} {case.note}".rstrip(),
                         time=f"{result.seconds:.4f}")
    if result.verdict is Verdict.FAIL:
        failure = ET.SubElement(element, "failure", message="; ".join(result.reasons)[:500], type="accuracy")
        failure.text = result.describe_failure()
    elif result.verdict is Verdict.UNSUPPORTED:
        ET.SubElement(element, "skipped", message="; ".join(result.reasons)[:500])
    return element


def contract_element(check: ContractResult) -> ET.Element:
    element = ET.Element("testcase", classname=f"{check.operator}.contract", name=f"{check.kind} [{check.combination}]",
                         time="0")
    if check.unsupported:
        ET.SubElement(element, "skipped", message=check.detail[:500])
    elif not check.passed:
        ET.SubElement(element, "failure", message=check.detail[:500], type="contract").text = check.detail
    return element


def junit_xml(results: Iterable[CaseResult], contract: Iterable[ContractResult], name: str = "operators.run") -> str:
    return suites_xml([case_element(r) for r in results] + [contract_element(c) for c in contract], name)


def integration_junit_xml(document: Mapping[str, Any], name: str = "operators.integrate") -> str:
    """One testcase per (layer, point) of an integration document, and one for the whole run (logits,
    generation: its verdict)."""
    cases = []
    for point in document["points"]:
        element = ET.Element("testcase", classname="model" if point["layer"] is None else f"layer{point['layer']}",
                             name=point["point"], time="0")
        if not point["passed"]:
            reasons = "; ".join(point["reasons"])
            ET.SubElement(element, "failure", message=reasons[:500], type="accuracy").text = reasons
        cases.append(element)
    run = ET.Element("testcase", classname="model", name="verdict (logits, generation)", time=str(document["seconds"]))
    if document["verdict"] != "pass":
        ET.SubElement(run, "failure", message=f"first over budget at {document.get('first_failure')}", type="accuracy")
    return suites_xml([*cases, run], name)


def suites_xml(cases: list[ET.Element], name: str) -> str:
    failures = sum(e.find("failure") is not None for e in cases)
    skipped = sum(e.find("skipped") is not None for e in cases)
    seconds = sum(float(e.get("time")) for e in cases)
    suites = ET.Element("testsuites", name=name, tests=str(len(cases)), failures=str(failures), errors="0",
                        skipped=str(skipped), time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=name, tests=str(len(cases)), failures=str(failures),
                          errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
