"""`python -m operators.run --jobs N`: the operators split over N runs of their own (on a host with
several GPUs, one GPU each), their results joined in the order one run gives, so the report is the
one a single run writes (apart from timings and the command line).

Each job is a whole `python -m operators.run` (its own watched process, its own crash isolation)
over a share of the operators; it hands its results back as a pickle at the path PART_VARIABLE
names, and prints its progress lines as a single run does. The run of jobs itself is not watched:
it calls no kernel."""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from operators.core.contract import ContractResult
from operators.core.device import Device, visible_gpu
from operators.core.exits import EXIT_FAIL, EXIT_PASS
from operators.core.journal import JOURNAL_VARIABLE, STARTED_VARIABLE, STOP_VARIABLE
from operators.core.result import CaseResult
from operators.core.run_config import RunConfig
from operators.core.status import STATUS_VARIABLE
from operators.core.supervision import Interrupted, raise_interrupted

PART_VARIABLE = "QWEN3_HARNESS_PART"
# Seconds per operator of a dev-profile run over f32, f16 and bf16 on an H200: only the balance of
# the jobs depends on them (an operator not listed counts as 10).
OPERATOR_SECONDS = {"random_sample": 78, "attention_decode_paged": 39, "attention_prefill": 37, "attention_decode": 36,
                    "moe_router": 32, "linear": 32, "moe_experts": 20, "swiglu": 18, "add_rms_norm": 16,
                    "embedding": 14, "rope": 10, "softmax": 7, "rms_norm": 6, "kv_cache_write": 6, "argmax": 6,
                    "kv_cache_write_paged": 2, "causal_softmax": 2}


@dataclass
class Part:
    """What one job checked."""
    results: list[CaseResult] = field(default_factory=list)
    contract: list[ContractResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    not_run: int = 0
    signal: int | None = None  # the run of jobs was stopped by this signal (its exit: 128 + it)
    broken: bool = False  # a job ended without its report (the run of jobs then exits 3)


def jobs_requested(argv: list[str]) -> int:
    """--jobs N of a command line, read before anything else (1 when absent or malformed: the full
    parse reports a malformed one)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--jobs", type=int, default=1)
    try:
        return pre.parse_known_args(argv)[0].jobs
    except SystemExit:
        return 1


def split_operators(operators: tuple[str, ...], jobs: int) -> list[tuple[str, ...]]:
    """Longest first onto the least loaded job; each share keeps the run's operator order."""
    loads = [0.0] * min(jobs, len(operators))
    shares: list[set[str]] = [set() for _ in loads]
    for operator in sorted(operators, key=lambda op: -OPERATOR_SECONDS.get(op, 10)):
        lightest = loads.index(min(loads))
        shares[lightest].add(operator)
        loads[lightest] += OPERATOR_SECONDS.get(operator, 10)
    return [tuple(op for op in operators if op in share) for share in shares]


def job_arguments(config: RunConfig, operators: tuple[str, ...]) -> list[str]:
    """The options of one job: the run's own, over its share of the operators, writing no file."""
    arguments = ["--device", config.device.value, "--backend", config.backend, "--operators", ",".join(operators),
                 "--dtypes", ",".join(d.short for d in config.dtypes), "--profile", config.profile,
                 "--examples", str(config.examples), "--seed", str(config.seed),
                 "--kernel-timeout", str(config.kernel_timeout)]
    arguments += ["--no-contract"] if not config.contract else []
    arguments += ["--guard-pages"] if config.guard_pages else []
    arguments += ["--plots", str(config.plots)] if config.plots else []
    return arguments


def job_environment(index: int, device: Device, gpus: int, part: Path) -> dict[str, str]:
    """A fresh watched run (not a child of this run's watching parent), on GPU index % gpus."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in (STATUS_VARIABLE, JOURNAL_VARIABLE, STOP_VARIABLE, STARTED_VARIABLE)}
    environment[PART_VARIABLE] = str(part)
    gpu = visible_gpu(index, gpus) if device is Device.NVIDIA and gpus > 1 else None
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = gpu
    return environment


def visible_gpus(device: Device) -> int:
    if device is not Device.NVIDIA:
        return 0
    import torch
    return torch.cuda.device_count()


def run_jobs(config: RunConfig, operators: tuple[str, ...]) -> Part:
    """Every job's results over `operators` (those the backend has), joined in the run's order.
    SIGTERM or Ctrl-C: each job reports what it finished (as a stopped run does), and so does this; a
    job that ended otherwise (an internal error, killed for memory): what the others finished, marked
    incomplete, and the run exits 3."""
    shares = split_operators(operators, config.jobs)
    gpus = visible_gpus(config.device)
    stopped = None
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with tempfile.TemporaryDirectory(prefix="qwen3-jobs-") as folder:
            parts = [Path(folder) / f"part{index}.pickle" for index in range(len(shares))]
            processes = []
            try:
                for index, share in enumerate(shares):
                    processes.append(subprocess.Popen(  # a session of its own: a signal reaches it once, from here
                        [sys.executable, "-m", "operators.run", *job_arguments(config, share)],
                        env=job_environment(index, config.device, gpus, parts[index]), start_new_session=True))
                codes = [process.wait() for process in processes]
            except (Interrupted, KeyboardInterrupt) as stop:
                stopped = signal.Signals(stop.signum if isinstance(stop, Interrupted) else signal.SIGINT)
                codes = stop_jobs(processes, stopped)
            loaded = [load_part(part) for part in parts]
    finally:
        signal.signal(signal.SIGTERM, previous)
    whole = joined(operators, [part for part in loaded if part is not None])
    broken = [f"{'+'.join(share)} (exit {code})" for share, code, part in zip(shares, codes, loaded)
              if part is None or code not in (EXIT_PASS, EXIT_FAIL) and stopped is None]
    if stopped is not None:
        whole.signal = stopped.value
        whole.stop_reason = whole.stop_reason or f"interrupted by {stopped.name}"
    elif broken:
        whole.broken = True
        whole.stop_reason = "; ".join(filter(None, [whole.stop_reason, f"a job ended before its report: "
                                                    f"{', '.join(broken)}"]))
    return whole


def stop_jobs(processes: list[subprocess.Popen], stopped: signal.Signals) -> list[int]:
    """Pass the signal on to every job (each in a session of its own, so only from here) and wait
    for each one's report; a further signal waits too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for process in processes:
            if process.poll() is None:
                process.send_signal(stopped)
        return [process.wait() for process in processes]
    finally:
        signal.signal(signal.SIGINT, previous)


def load_part(path: Path) -> Part | None:
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        return None


def joined(operators: tuple[str, ...], parts: list[Part]) -> Part:
    """The parts in the order one run checks: operator by operator (a job holds whole operators)."""
    order = {op: number for number, op in enumerate(operators)}
    whole = Part(stop_reason="; ".join(dict.fromkeys(p.stop_reason for p in parts if p.stop_reason)) or None,
                 not_run=sum(p.not_run for p in parts))
    whole.results = sorted((r for p in parts for r in p.results), key=lambda r: order[r.case.operator])
    whole.contract = sorted((c for p in parts for c in p.contract), key=lambda c: order[c.operator])
    whole.skipped = sorted({op for p in parts for op in p.skipped})
    return whole


def hand_back(part: Part) -> bool:
    """In a job: the results go to the path the running --jobs names (True), else nothing (False);
    written whole or not at all."""
    path = os.environ.get(PART_VARIABLE)
    if not path:
        return False
    temporary = Path(f"{path}.writing")
    temporary.write_bytes(pickle.dumps(part))
    os.replace(temporary, path)
    return True
