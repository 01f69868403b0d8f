"""`python -m operators.panel`: every panel member judged on the same cases over several seeds.

Each case is drawn once and its reference and baselines computed once; every member that has the
operator is then judged on it. Exit 0 when no correct member failed and every wrong kernel was
caught at every seed, 1 otherwise, 2 and 3 as operators/core/exits.py says."""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch

from operators.backends import BackendError
from operators.core.checker import prepare_case, run_kernel
from operators.core.contract import check_contract
from operators.core.drawing import draw_cases
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, UsageError, usage_exit
from operators.core.kernel_errors import NativeBuildError
from operators.panel.document import build_panel_document, panel_markdown
from operators.panel.members import Role, Seated, all_members, seat
from operators.panel.tally import Judgement
from operators.core.profiles import PROFILES, examples
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.result import Verdict
from operators.core.supervision import watched_command
from operators.core.target import add_device_option, check_available, parse_device
from reports.document import ReportPathError, check_report_path, write_json, write_text_atomically
from reports.environment import collect_environment


def parser() -> argparse.ArgumentParser:
    names = [m.name for m in all_members()]
    p = argparse.ArgumentParser(prog="python -m operators.panel", description=__doc__)
    add_device_option(p)
    p.add_argument("--seeds", type=int, default=5, help="number of case-draw seeds (default 5)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--profile", default="dev", choices=sorted(PROFILES), help="case-set size (default dev)")
    p.add_argument("--examples", type=int, help="cases per operator, dtype and seed (overrides the profile)")
    p.add_argument("--operators", default=",".join(OPERATOR_NAMES), help="comma-separated operator names")
    p.add_argument("--dtypes", default="f32,f16,bf16", help="comma-separated working dtypes")
    p.add_argument("--members", default=",".join(names),
                   help="comma-separated members (default all): " + ", ".join(names))
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one seed each at a time (default 1)")
    p.add_argument("--output", type=Path, help="write the JSON document here (rewritten after each seed)")
    p.add_argument("--markdown", type=Path, help="write the tables as markdown here")
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.device = parse_device(args.device)
    try:
        args.dtypes = tuple(DType.parse(d.strip()) for d in args.dtypes.split(",") if d.strip())
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.dtypes or any(d not in FLOAT_DTYPES for d in args.dtypes):
        raise UsageError("--dtypes must name working dtypes among f32, f16, bf16")
    args.operators = tuple(o.strip() for o in args.operators.split(",") if o.strip())
    unknown = [o for o in args.operators if o not in OPERATOR_NAMES]
    if unknown or not args.operators:
        raise UsageError(f"unknown operator(s) {', '.join(unknown) or '(none given)'}")
    known = {m.name: m for m in all_members()}
    wanted = [n.strip() for n in args.members.split(",") if n.strip()]
    missing = [n for n in wanted if n not in known]
    if missing or not wanted:
        raise UsageError(f"unknown member(s) {', '.join(missing) or '(none given)'}; expected among {', '.join(known)}")
    args.members = tuple(known[n] for n in wanted)
    if args.seeds < 1 or args.jobs < 1 or (args.examples is not None and args.examples < 1):
        raise UsageError("--seeds, --jobs and --examples must be at least 1")
    args.examples = args.examples or examples(args.profile)
    for option, path in (("--output", args.output), ("--markdown", args.markdown)):
        if path is not None:
            try:
                check_report_path(path)
            except ReportPathError as error:
                raise UsageError(f"{option}: {error}") from None
    args.seed_list = tuple(range(args.first_seed, args.first_seed + args.seeds))
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def judge_seed(args: argparse.Namespace, seated: list[Seated], seed: int,
               after_operator=lambda judgements: None) -> list[Judgement]:
    judgements: list[Judgement] = []
    for operator in args.operators:
        spec = get_spec(operator)
        panel = [(s, s.kernel(operator)) for s in seated if s.kernel(operator) is not None]
        if not panel:
            continue
        for dtype in args.dtypes:
            started, before, preparing = time.perf_counter(), len(judgements), 0.0
            for case in draw_cases(spec, args.device, dtype, args.examples, seed):
                prepare_started = time.perf_counter()
                prepared = prepare_case(spec, case, args.device)
                preparing += time.perf_counter() - prepare_started
                for member, kernel in panel:
                    result = run_kernel(prepared, kernel, member.backend.loaded_as)
                    judgements.append(Judgement(member.member.name, member.member.role, seed, result))
                    if result.verdict is Verdict.FAIL and member.member.role is not Role.WRONG:
                        progress(f"  {member.member.name} failed {operator} {dtype.short} (seed {seed}, regime "
                                 f"{case.regime.value}): {result.reasons[0]}\n    case: {case.compact_json()}")
            new = judgements[before:]
            alarms = sum(j.role is Role.CORRECT and j.result.verdict is Verdict.FAIL for j in new)
            progress(f"seed {seed} {operator} {dtype.short}: {len(new)} judgements, {alarms} false alarms "
                     f"({time.perf_counter() - started:.1f}s: cases and references {preparing:.1f}s, "
                     f"{slowest_members(new)})")
        after_operator(judgements)
    return judgements


def slowest_members(judgements: list[Judgement], shown: int = 3) -> str:
    seconds: dict[str, float] = {}
    for j in judgements:
        seconds[j.member] = seconds.get(j.member, 0.0) + j.result.seconds
    slowest = sorted(seconds.items(), key=lambda item: -item[1])[:shown]
    return ", ".join(f"{member} {spent:.1f}s" for member, spent in slowest)


def pin_worker(slots) -> None:
    """Worker start: one GPU of the host per worker while there are enough (CUDA initialises lazily,
    so the variable still applies); several workers on one GPU share it by time-slicing, which costs
    more than it gains for this synchronising workload."""
    gpus = slots.get()
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus


def wrong_contracts(args: argparse.Namespace, seated: list[Seated]) -> dict[str, list[str]]:
    """The dtype-contract check of each wrong kernel's operator (a bug that accepts a combination it
    must refuse shows there, not in the cases): the failed checks' details by member."""
    failed = {}
    for s in seated:
        if s.member.role is Role.WRONG and s.backend is not None:
            for operator in s.member.operators or ():
                if operator in args.operators and s.kernel(operator) is not None:
                    checks = check_contract(get_spec(operator), s.kernel(operator), args.device, s.backend.name)
                    failed[s.member.name] = [c.detail for c in checks if not c.passed]
    return failed


def seed_worker(args: argparse.Namespace, seed: int) -> list[Judgement]:
    """One seed in a worker process: it seats its own members (backends do not cross processes;
    `args.members` holds their names)."""
    known = {member.name: member for member in all_members()}
    args.members = tuple(known[name] for name in args.members)
    return judge_seed(args, seat(args.members, args.device), seed)


def judge_all(args: argparse.Namespace, seated: list[Seated], report) -> list[Judgement]:
    """Every seed, in this process or spread over --jobs worker processes (one device, several
    processes keep it busy while each spends its time in Python); `report` gets the judgements so
    far after each seed, so a long run that is stopped keeps what it finished."""
    judgements: list[Judgement] = []
    if args.jobs == 1:
        for seed in args.seed_list:
            judgements += judge_seed(args, seated, seed, lambda new: report(judgements + new, done=False))
            report(judgements, done=seed == args.seed_list[-1])
        return judgements
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    count = torch.cuda.device_count() if args.device.torch_type == "cuda" else 0
    for worker in range(args.jobs):
        slots.put(str(worker % count) if count else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context,
                                                initializer=pin_worker, initargs=(slots,)) as pool:
        plain = argparse.Namespace(**{**vars(args), "members": tuple(m.name for m in args.members)})
        futures = [pool.submit(seed_worker, plain, seed) for seed in args.seed_list]
        for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
            judgements += future.result()
            report(judgements, done=number == len(futures))
    return judgements


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        check_available(args.device)
        seated = seat(args.members, args.device)
        if not any(s.kernel(op) is not None for s in seated for op in args.operators):
            absent = "; ".join(f"{s.member.name}: {s.reason}" for s in seated if s.backend is None)
            raise UsageError("no member on the panel has a kernel for the chosen operators: nothing would be "
                             f"judged{f' ({absent})' if absent else ''}")
    except (UsageError, BackendError, NativeBuildError) as error:
        return usage_exit(error)
    for absent in [s for s in seated if s.backend is None]:
        progress(f"member {absent.member.name}: not on the panel ({absent.reason})")
    started = time.perf_counter()
    native = next((s.backend for s in seated if s.member.name == "native" and s.backend), None)
    config = {"device": args.device.value, "seeds": list(args.seed_list), "profile": args.profile,
              "examples": args.examples, "operators": list(args.operators),
              "dtypes": [d.value for d in args.dtypes], "members": [m.name for m in args.members],
              "command": "python -m operators.panel " + " ".join(sys.argv[1:] if argv is None else argv)}
    environment = collect_environment(args.device.torch_type, native)
    contract = wrong_contracts(args, seated)
    final: dict = {}

    def report(judgements: list[Judgement], done: bool) -> None:
        # A report written before the end counts the wrong kernels at the seeds they were judged at
        # (a stopped run is a smaller run, not one that missed them at the seeds it never reached).
        # `judged`: the (seed, operator) pairs judged in full (reports are written between operators),
        # so a stopped run can be merged with runs that judged the rest.
        document = build_panel_document(judgements, seated, config, environment, contract)
        document["complete"] = done
        document["judged"] = sorted({(j.run_seed, j.result.case.operator) for j in judgements})
        document["seconds"] = round(time.perf_counter() - started, 2)
        final.update(document=document, markdown=panel_markdown(document))
        if args.output:
            write_json(args.output, document)
        if args.markdown:
            write_text_atomically(args.markdown, final["markdown"] + "\n")

    try:
        judge_all(args, seated, report)
    except OSError as error:
        print(f"error: cannot write the panel report: {error}", file=sys.stderr)
        return EXIT_USAGE
    document = final["document"]
    print(final["markdown"])
    progress(f"panel: {document['verdict'].upper()} ({document['totals']['false_alarms']} false alarms, "
             f"{document['totals']['wrong_missed']} wrong kernels missed at some seed, {document['seconds']}s)")
    return EXIT_PASS if document["verdict"] == "pass" else EXIT_FAIL


def cli() -> int:
    """The command, in a watched child process (operators/core/supervision.py)."""
    return watched_command("operators.panel", main)
