"""The options of `python -m operators.run` and the RunConfig they become: every bad value is a
UsageError naming the option (exit 2)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from operators.core.case import Case
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import UsageError
from operators.core.profiles import PROFILES, examples
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.status import DEFAULT_KERNEL_TIMEOUT
from operators.core.target import add_backend_option, add_device_option, add_guard_options, parse_device
from reports.document import ReportPathError, check_report_path
from reports.drift import RELATIVE_MARGIN, add_drift_options, load_baseline
from reports.schemas import DocumentKindError

DESCRIPTION = ("Check every operator x dtype case set on a device and backend, print the tables, write the JSON "
               "report. Exit 0 when all pass, 1 when any fails, 2 usage or environment, 3 an internal error.")


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
    plots: Path | None = None  # a folder for the PNG pictures (matplotlib)
    jobs: int = 1  # runs the operators are split over (one per GPU)

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(device=self.device.value, dtypes=[d.value for d in self.dtypes],
                    output=str(self.output) if self.output else None,
                    baseline=str(self.baseline) if self.baseline else None,
                    junit_xml=str(self.junit_xml) if self.junit_xml else None,
                    markdown=str(self.markdown) if self.markdown else None,
                    plots=str(self.plots) if self.plots else None,
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
    p = argparse.ArgumentParser(prog="python -m operators.run", description=DESCRIPTION)
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
    add_plots_option(p.add_argument)
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="split the operators over N runs at once, on a GPU host one per GPU (GPU j %% count); "
                        "one report, in the order a single run gives (default 1)")
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
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1; got {args.jobs}")
    if args.jobs > 1 and args.replay:
        raise UsageError("--replay checks one case in one process; leave out --jobs")
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
    check_plots_option(args.plots)
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
                     markdown=args.markdown, plots=args.plots, jobs=args.jobs)


def add_plots_option(add) -> None:
    """--plots, shared by operators.run and operators.integrate."""
    add("--plots", type=Path, metavar="DIR",
        help="write PNG pictures here (needs matplotlib): the run's budget use per operator and where each failing "
             "case's error sits (operators.run), or the error per layer (operators.integrate); --markdown links them")


def check_plots_option(directory: Path | None) -> None:
    """Before anything runs: matplotlib is there and the folder can be written."""
    if directory is None:
        return
    from reports.pictures import PicturesUnavailable, require_matplotlib
    try:
        require_matplotlib()
    except PicturesUnavailable as error:
        raise UsageError(str(error)) from None
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--plots: '{directory}' is not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--plots: cannot create the folder '{directory}' ({error.strerror})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--plots: no write permission in '{directory}'")


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
