"""`python -m operators.run`: check every operator x dtype case set on a device and backend,
print the tables, write the JSON report. Exit 0 when all pass, 1 when any fails, 2 and 3 as operators/core/exits.py says."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from operators.backends import Backend, BackendError, started
from operators.core.case import Case
from operators.core.checker import check_case
from operators.core.contract import ContractResult, check_contract
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, UsageError, usage_exit
from operators.core.profiles import PROFILES, examples
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.run_context import RunContext, current_stream
from operators.rope import MAX_POSITION
from operators.core.result import CaseResult, Verdict, ended_case, repro_command
from operators.core.guard_pages import report_faults_to
from operators.core.journal import Steps
from operators.core.status import DEFAULT_KERNEL_TIMEOUT, Status, watched
from operators.core.supervision import watched_command
from operators.core.target import (add_backend_option, add_device_option, add_guard_options,
                                   check_something_is_checked, parse_device, select_backend)
from reports.document import ReportPathError, build_document, check_report_path, json_text, write_text_atomically
from reports.junit import junit_xml
from reports.environment import collect_environment
from reports.coverage import coverage_table
from reports.drift import RELATIVE_MARGIN, Drift, add_drift_options, compare, load_baseline
from reports.markdown import run_markdown
from reports.schemas import DocumentKindError
from reports.tables import contract_table, summary_table, support_table

FAILURES_SHOWN = 5


@dataclass(frozen=True)
class RunConfig:
    device: Device
    backend: str
    operators: tuple[str, ...]
    dtypes: tuple[DType, ...]
    profile: str
    examples: int
    seed: int
    contract: bool
    output: Path | None
    replay: Case | None
    operators_named: bool = False  # --operators given: every named operator must be checked
    require_support: bool = False  # a case the kernel refuses as unsupported fails the run
    kernel_timeout: float = DEFAULT_KERNEL_TIMEOUT
    guard_pages: bool = False  # CPU: inaccessible pages around every tensor's buffer
    baseline: Path | None = None  # an earlier report of the same seed: drift against it fails the run
    junit_xml: Path | None = None
    markdown: Path | None = None
    drift_margin: float = RELATIVE_MARGIN
    fail_on: str = "drift"

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(device=self.device.value, dtypes=[d.value for d in self.dtypes],
                    output=str(self.output) if self.output else None,
                    baseline=str(self.baseline) if self.baseline else None,
                    junit_xml=str(self.junit_xml) if self.junit_xml else None,
                    markdown=str(self.markdown) if self.markdown else None,
                    replay=self.replay.to_json() if self.replay else None)
        return data


class ListAction(argparse.Action):
    """--list: the operators (with what they compute), the working dtypes and the profiles, then exit."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print("operators:")
        for name in OPERATOR_NAMES:
            print(f"  {name:24} {get_spec(name).summary}")
        print(f"working dtypes: {', '.join(d.short for d in FLOAT_DTYPES)}")
        print("profiles: " + ", ".join(f"{name} ({examples(name)} cases per operator and dtype)" for name in PROFILES))
        parser.exit()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m operators.run", description=__doc__)
    add_device_option(p)
    add_backend_option(p)
    p.add_argument("--list", action=ListAction, help="print the operators, working dtypes and profiles, and exit")
    p.add_argument("--operators", help="comma-separated operator names (default: every operator the backend has)")
    p.add_argument("--dtypes", default="f32,f16,bf16", help="comma-separated working dtypes")
    p.add_argument("--profile", default="dev", choices=sorted(PROFILES), help="case-set size (default dev)")
    p.add_argument("--examples", type=int, help="cases per operator and dtype (overrides the profile)")
    p.add_argument("--seed", type=int, default=0, help="seed of the case draws (default 0)")
    p.add_argument("--no-contract", action="store_true", help="skip the dtype-contract checks")
    add_guard_options(p.add_argument)
    p.add_argument("--baseline", type=Path, help="an earlier report of the same seed and profile: new failures, "
                                                "drift beyond the margin and missing pairs fail the run")
    add_drift_options(p.add_argument)
    p.add_argument("--output", type=Path, help="write the JSON report here")
    p.add_argument("--junit-xml", type=Path, help="write the cases and contract checks as JUnit XML (CI dashboards)")
    p.add_argument("--markdown", type=Path, help="write a markdown summary (tables, top failures, drift) for a CI "
                                                "job page")
    p.add_argument("--replay", help="re-run one case given as JSON (as printed in a failure)")
    return p


def parse_config(argv: list[str] | None) -> RunConfig:
    args = parser().parse_args(argv)
    device = parse_device(args.device)
    try:
        dtypes = tuple(DType.parse(d.strip()) for d in args.dtypes.split(",") if d.strip())
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not dtypes or any(d not in FLOAT_DTYPES for d in dtypes):
        raise UsageError(f"--dtypes must name working dtypes among f32, f16, bf16; got '{args.dtypes}'")
    operators = tuple(o.strip() for o in (args.operators or ",".join(OPERATOR_NAMES)).split(",") if o.strip())
    unknown = [o for o in operators if o not in OPERATOR_NAMES]
    if unknown or not operators:
        raise UsageError(f"unknown operator(s) {', '.join(unknown) or '(none given)'}; expected among "
                         f"{', '.join(OPERATOR_NAMES)}")
    if args.examples is not None and args.examples < 1:
        raise UsageError("--examples must be at least 1")
    if args.guard_pages and device is not Device.CPU:
        raise UsageError("--guard-pages works on --device cpu (GPU memory has no guard pages; run the library "
                         "under compute-sanitizer instead)")
    if args.baseline is not None:
        try:
            load_baseline(args.baseline)
        except (OSError, ValueError, DocumentKindError) as error:
            raise UsageError(f"--baseline: {error}") from None
    if not args.kernel_timeout > 0:
        raise UsageError(f"--kernel-timeout must be a positive number of seconds; got {args.kernel_timeout}")
    for option, path in (("--output", args.output), ("--junit-xml", args.junit_xml), ("--markdown", args.markdown)):
        try:
            if path is not None:
                check_report_path(path)
        except ReportPathError as error:
            raise UsageError(f"{option}: {error}") from None
    replay = None
    if args.replay:
        try:
            replay = Case.from_json(json.loads(args.replay))
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"--replay is not a case: {type(error).__name__}: {error}") from None
        if replay.operator not in OPERATOR_NAMES:
            raise UsageError(f"--replay names unknown operator '{replay.operator}'")
        check_replay_matches_spec(replay)
    return RunConfig(device=device, backend=args.backend, operators=operators, dtypes=dtypes,
                     profile=args.profile, examples=args.examples or examples(args.profile), seed=args.seed,
                     contract=not args.no_contract, output=args.output, replay=replay,
                     operators_named=args.operators is not None, require_support=args.require_support,
                     kernel_timeout=args.kernel_timeout, guard_pages=args.guard_pages, baseline=args.baseline,
                     drift_margin=args.drift_margin, fail_on=args.fail_on, junit_xml=args.junit_xml,
                     markdown=args.markdown)


def check_replay_matches_spec(case: Case) -> None:
    """The replayed case names the operator's tensors, with non-negative shapes (missing attributes
    are the checker's to report)."""
    spec = get_spec(case.operator)
    required = set(spec.inputs) - set(spec.optional_inputs)
    wrong = sorted(set(case.inputs) - set(spec.inputs)) + sorted(required - set(case.inputs)) + \
        sorted(set(case.outputs) ^ set(spec.outputs))
    if wrong:
        raise UsageError(f"--replay: {case.operator} has no tensor(s) {', '.join(wrong)} or lacks them "
                         f"(inputs {', '.join(spec.inputs)}; outputs {', '.join(spec.outputs)})")
    negative = [n for n, t in {**case.inputs, **case.outputs}.items() if any(d < 0 for d in t.shape)]
    if negative:
        raise UsageError(f"--replay: tensor(s) {', '.join(negative)} have a negative dimension")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_cases(config: RunConfig, backend: Backend, steps: Steps) -> tuple[list[CaseResult], list[str]]:
    results, skipped = [], []
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
                                               config.guard_pages),
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
    results, skipped = run_cases(config, backend, steps)
    contract = run_contract(config, backend, steps) if config.contract else []
    environment = collect_environment(config.device.torch_type, backend)
    document = build_document(results, contract, {**config.to_json(), "skipped_operators": skipped}, environment,
                              incomplete=steps.stop_reason and {"reason": steps.stop_reason,
                                                                "steps_not_run": steps.not_run})
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
    for path, text in ((config.output, lambda: json_text(document)),
                       (config.junit_xml, lambda: junit_xml(results, contract)),
                       (config.markdown, lambda: run_markdown(document, results, contract, drift))):
        if path:
            try:
                write_text_atomically(path, text())
            except OSError as error:
                print(f"error: cannot write the report to {path}: {error}", file=sys.stderr)
                return EXIT_USAGE
            progress(f"wrote {path}")
    verdict = document["verdict"]
    if steps.stop_reason:
        progress(f"incomplete: {steps.stop_reason}; {steps.not_run} steps (cases or contract checks) not run")
    progress(f"verdict: {verdict.upper()} ({sum(r.passed for r in results)}/{len(results)} cases passed"
             + (f", {unsupported} unsupported" if unsupported else "") + ", "
             f"{sum(c.passed and not c.unsupported for c in contract)}/{len(contract)} contract checks"
             + (f" ({refused_combinations} unsupported)" if refused_combinations else "") + f", {document['seconds']}s)"
             + (f"; {len(skipped)} of {len(config.operators)} operators not tested, the backend has no kernel: "
                f"{', '.join(skipped)}" if skipped else ""))
    return EXIT_PASS if verdict == "pass" and not regressed else EXIT_FAIL


def drift_against_baseline(config: RunConfig, document: dict) -> Drift | None:
    """The run against --baseline, printed (None without one)."""
    if config.baseline is None:
        return None
    drift = compare(load_baseline(config.baseline), json.loads(json.dumps(document, default=str)),
                    config.drift_margin)
    print()
    print("\n".join(drift.lines()))
    regressed = drift.regressed(config.fail_on)
    progress(f"drift against {config.baseline}: {'REGRESSION' if regressed else 'none beyond the margin'}")
    return drift


def cli() -> int:
    """The command, in a watched child process (operators/core/supervision.py)."""
    return watched_command("operators.run", main, resumes=True)


if __name__ == "__main__":
    sys.exit(cli())
