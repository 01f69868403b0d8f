"""`python -m operators.run`: check every operator x dtype case set on a device and backend,
print the tables, write the JSON report. Exit 0 when all pass, 1 when any fails, 2 and 3 as operators/core/exits.py says."""

from __future__ import annotations

import json
import sys
import time

from operators.backends import Backend, BackendError, started
from operators.core.checker import check_case
from operators.core.contract import ContractResult, check_contract
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.exits import (EXIT_FAIL, EXIT_INTERNAL, EXIT_PASS, EXIT_USAGE, UsageError, run_guarded,
                                  usage_exit)
from operators.core.guard_pages import report_faults_to
from operators.core.jobs import Part, hand_back, jobs_requested, run_jobs
from operators.core.journal import Steps
from operators.core.registry import get_spec
from operators.core.result import CaseResult, Verdict, ended_case, repro_command
from operators.core.run_config import RunConfig, parse_config
from operators.core.run_context import RunContext, current_stream
from operators.core.status import Status, watched
from operators.core.supervision import watched_command
from operators.core.target import check_something_is_checked, select_backend
from operators.rope import MAX_POSITION
from reports.coverage import coverage_table
from reports.document import build_document, json_text, write_text_atomically
from reports.drift import Drift, compare, load_baseline
from reports.environment import collect_environment
from reports.junit import junit_xml
from reports.markdown import run_markdown
from reports.pictures import case_picture_writer, run_pictures
from reports.tables import contract_table, summary_table, support_table

FAILURES_SHOWN = 5


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_cases(config: RunConfig, backend: Backend, steps: Steps) -> tuple[list[CaseResult], list[str]]:
    results, skipped = [], []
    on_failure = case_picture_writer(config.plots, steps.started) if config.plots else None
    groups = [(op, dtype) for op in config.operators for dtype in config.dtypes]
    live, began = sys.stderr.isatty(), time.perf_counter()  # a live case counter on a terminal only
    for number, (operator, dtype) in enumerate(groups, 1):
        spec, kernel = get_spec(operator), watched(steps.status, backend.kernel(operator))
        if kernel is None:
            skipped.append(operator)
            progress(f"[{number}/{len(groups)}] {operator} {dtype.short}: skipped, backend '{backend.name}' has no kernel")
            continue
        started = time.perf_counter()
        cases = draw_cases(spec, config.device, dtype, config.examples, config.seed)
        rows = []
        for index, case in enumerate(cases):
            row = steps.run(f"{operator}/{dtype.short}/{index}",
                            f"{operator} {dtype.short}: {repro_command(case, config.backend, config.device)}",
                            lambda: check_case(spec, case, kernel, config.device, backend.loaded_as,
                                               config.guard_pages, on_failure),
                            lambda reason: ended_case(case, kernel, backend.loaded_as, config.device, spec.budget,
                                                      reason))
            if row is not None:
                rows.append(row)
            if live:
                print(f"\r[{number}/{len(groups)}] {operator} {dtype.short}: {index + 1}/{len(cases)} cases",
                      end="", file=sys.stderr, flush=True)
        results += rows
        passed = sum(r.passed for r in rows)
        elapsed = time.perf_counter() - began
        progress(("\r" if live else "") + f"[{number}/{len(groups)}] {operator} {dtype.short}: {len(rows)} cases, "
                 f"{passed} passed ({time.perf_counter() - started:.1f}s; {elapsed:.0f}s in, about "
                 f"{elapsed / number * (len(groups) - number):.0f}s left)")
    return results, sorted(set(skipped))


def run_contract(config: RunConfig, backend: Backend, steps: Steps) -> list[ContractResult]:
    results = []
    for operator in config.operators:
        kernel = watched(steps.status, backend.kernel(operator))
        if kernel is not None:
            results += steps.run(
                f"{operator}/contract", f"{operator}: the dtype-contract checks",
                lambda: check_contract(get_spec(operator), kernel, config.device, backend.loaded_as),
                lambda reason: [ContractResult(operator, "(a contract check)", True, False, reason)]) or []
    return results


def replay(config: RunConfig, backend: Backend, status: Status | None = None) -> int:
    case = config.replay
    kernel = watched(status, backend.kernel(case.operator))
    if kernel is None:
        raise UsageError(f"backend '{backend.name}' has no kernel for '{case.operator}'")
    if status is not None:
        status.step("", f"{case.operator}: {repro_command(case, config.backend, config.device)}")
    try:
        result = check_case(get_spec(case.operator), case, kernel, config.device, backend.loaded_as, config.guard_pages)
    except (ValueError, RuntimeError, IndexError, KeyError) as error:  # inputs cannot be drawn for this case
        raise UsageError(f"--replay: the case cannot be built for {case.operator}: {type(error).__name__}: "
                         f"{error}") from None
    print(json.dumps(result.to_json(), indent=1))
    if not result.passed:
        progress(result.describe_failure())
    return EXIT_PASS if result.passed else EXIT_FAIL


def main(argv: list[str] | None = None) -> int:
    status = Status.from_environment()
    try:
        config = parse_config(argv)
        if status is not None:
            status.kernel_timeout = config.kernel_timeout
            if config.device is Device.CPU:
                report_faults_to(status.path)
        backend = select_backend(config.backend, config.device)
        if not config.replay:
            check_something_is_checked(backend, config.operators, each_one=config.operators_named)
        operators = (config.replay.operator,) if config.replay else config.operators
        context = RunContext(config.device, tuple(op for op in operators if backend.kernel(op)), MAX_POSITION,
                             current_stream(config.device))
        with started(backend, context):
            return replay(config, backend, status) if config.replay else check_and_report(config, backend, status)
    except (UsageError, BackendError) as error:
        return usage_exit(error)


def check_and_report(config: RunConfig, backend: Backend, status: Status | None) -> int:
    progress(f"checking {len(config.operators)} operators x {len(config.dtypes)} dtypes on {config.device.value} "
             f"with backend '{backend.name}' ({config.examples} cases each, seed {config.seed})")
    steps = Steps.from_environment(status)
    if config.jobs > 1:
        have = tuple(op for op in config.operators if backend.kernel(op) is not None)
        checked = run_jobs(config, have)
        checked.skipped = sorted(set(config.operators) - set(have))
    else:
        results, skipped = run_cases(config, backend, steps)
        contract = run_contract(config, backend, steps) if config.contract else []
        checked = Part(results, contract, skipped, steps.stop_reason, steps.not_run)
        if hand_back(checked):  # a job of a run with --jobs: that run reports
            failed = any(r.verdict is Verdict.FAIL for r in results) or any(not c.passed for c in contract)
            return EXIT_FAIL if failed else EXIT_PASS
    results, contract, skipped = checked.results, checked.contract, checked.skipped
    environment = collect_environment(config.device.torch_type, backend)
    document = build_document(results, contract, {**config.to_json(), "skipped_operators": skipped}, environment,
                              incomplete=checked.stop_reason and {"reason": checked.stop_reason,
                                                                  "steps_not_run": checked.not_run})
    document["seconds"] = round(time.time() - steps.started, 2)
    print(summary_table(document["summary"]))
    if document["coverage"]:
        print()
        print(coverage_table(document["coverage"]))
    if contract:
        print()
        print(contract_table(contract))
    failures = [r for r in results if r.verdict is Verdict.FAIL]
    unsupported = sum(r.verdict is Verdict.UNSUPPORTED for r in results)
    if unsupported:
        print()
        print(support_table(results))
    refused_combinations = sum(c.unsupported for c in contract)
    if (unsupported or refused_combinations) and config.require_support:
        document["verdict"] = "fail"
        progress(f"--require-support: {unsupported} cases were refused as unsupported"
                 + (f", and {refused_combinations} allowed dtype combinations" if refused_combinations else ""))
    for failure in failures[:FAILURES_SHOWN]:
        progress(failure.describe_failure())
    for broken in [c for c in contract if not c.passed][:FAILURES_SHOWN]:
        progress(f"{broken.kind} contract: {broken.operator} [{broken.combination}]: {broken.detail}")
    drift = drift_against_baseline(config, document)
    regressed = drift is not None and drift.regressed(config.fail_on)
    if drift is not None:
        document["drift"] = {"baseline": str(config.baseline), "regressed": regressed, "cases_matched": drift.matched,
                             "new_failures": len(drift.new_failures), "drifted": len(drift.drifted),
                             "missing_pairs": drift.missing_pairs, "environment_changes": drift.environment}
    pictures = run_pictures(config.plots, results, steps.started) if config.plots else []
    if pictures:
        progress(f"wrote {len(pictures)} pictures to {config.plots}")
    for path, text in ((config.output, lambda: json_text(document)),
                       (config.junit_xml, lambda: junit_xml(results, contract)),
                       (config.markdown, lambda: run_markdown(document, results, contract, drift, pictures))):
        if path:
            try:
                write_text_atomically(path, text())
            except OSError as error:
                print(f"error: cannot write the report to {path}: {error}", file=sys.stderr)
                return EXIT_USAGE
            progress(f"wrote {path}")
    verdict = document["verdict"]
    if checked.stop_reason:
        progress(f"incomplete: {checked.stop_reason}; {checked.not_run} steps (cases or contract checks) not run")
    progress(f"verdict: {verdict.upper()} ({sum(r.passed for r in results)}/{len(results)} cases passed"
             + (f", {unsupported} unsupported" if unsupported else "") + ", "
             f"{sum(c.passed and not c.unsupported for c in contract)}/{len(contract)} contract checks"
             + (f" ({refused_combinations} unsupported)" if refused_combinations else "") + f", {document['seconds']}s)"
             + (f"; {len(skipped)} of {len(config.operators)} operators not tested, the backend has no kernel: "
                f"{', '.join(skipped)}" if skipped else ""))
    if checked.signal is not None:
        return 128 + checked.signal  # as a single run stopped by the signal exits
    if checked.broken:
        return EXIT_INTERNAL
    return EXIT_PASS if verdict == "pass" and not regressed else EXIT_FAIL


def drift_against_baseline(config: RunConfig, document: dict) -> Drift | None:
    """The run against --baseline, printed (None without one)."""
    if config.baseline is None:
        return None
    drift = compare(load_baseline(config.baseline), json.loads(json_text(document)),
                    config.drift_margin)
    print()
    print("\n".join(drift.lines()))
    regressed = drift.regressed(config.fail_on)
    progress(f"drift against {config.baseline}: {'REGRESSION' if regressed else 'none beyond the margin'}")
    return drift


def cli() -> int:
    """The command, in a watched child process (operators/core/supervision.py); with --jobs, each
    job is one such command and this process only joins their results."""
    if jobs_requested(sys.argv[1:]) > 1:
        return run_guarded("operators.run", main)
    return watched_command("operators.run", main, resumes=True)


if __name__ == "__main__":
    sys.exit(cli())
