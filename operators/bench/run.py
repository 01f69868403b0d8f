"""`python -m operators.bench`: every operator's native kernel timed against PyTorch on Qwen3 shapes.

Each workload is checked for accuracy first (only passing kernels are timed) and judged again on
its timed output. Copy bandwidth and the bf16 matmul rate are measured in the same run."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

from tabulate import tabulate

from operators.bench.measure import measure
from operators.bench.timing import measure_ceilings
from operators.bench.workloads import Workload, workloads
from operators.core.device import Device
from operators.core.exits import EXIT_FAIL, EXIT_PASS, UsageError, run_guarded, usage_exit
from operators.core.target import add_backend_option, add_device_option, parse_device, select_backend
from reports.benchmark import HEADERS, benchmark_document, benchmark_markdown, table_rows
from reports.document import write_json
from reports.environment import collect_environment


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m operators.bench", description=__doc__)
    add_device_option(p, Device.NVIDIA)
    add_backend_option(p)
    p.add_argument("--operators", help="comma-separated operator names (default: all)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile candidates")
    p.add_argument("--output", type=Path, help="JSON results")
    p.add_argument("--markdown", type=Path, help="the table as Markdown, with card, date and command")
    return p


def chosen_workloads(operators: str | None) -> list[Workload]:
    """The workloads of the comma-separated `operators` (all when None)."""
    chosen = workloads()
    if not operators:
        return chosen
    names = {n.strip() for n in operators.split(",") if n.strip()}
    unknown = names - {w.operator for w in chosen}
    if unknown:
        raise UsageError(f"unknown operator(s) {', '.join(sorted(unknown))}")
    return [w for w in chosen if w.operator in names]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        device = parse_device(args.device)
        if device is Device.CPU:
            raise UsageError("benchmark mode times GPU kernels with CUDA events; use --device nvidia")
        backend = select_backend(args.backend, device)
        chosen = chosen_workloads(args.operators)
    except UsageError as error:
        return usage_exit(error)
    target = device.torch_device()
    ceilings = measure_ceilings(target)
    print(f"copy {ceilings.copy_gb_per_s:.0f} GB/s, bf16 matmul {ceilings.matmul_tflop_per_s:.0f} TFLOP/s", flush=True)
    results = []
    for index, workload in enumerate(chosen, 1):
        results.append(measure(workload, backend, device, compile_baselines=not args.no_compile))
        print(f"[{index}/{len(chosen)}] {workload.name}: {results[-1].status}", flush=True)
    print(tabulate(table_rows(results, ceilings), headers=HEADERS))
    environment = collect_environment(device.torch_type, backend)
    command = "python -m operators.bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.output:
        write_json(args.output, benchmark_document(results, ceilings, environment, command, date))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(benchmark_markdown(results, ceilings, environment, command, date))
    return EXIT_FAIL if any(m.status != "timed" for m in results) else EXIT_PASS


def cli() -> int:
    """The command: main() with exit codes by cause (operators/core/exits.py)."""
    return run_guarded("operators.bench", main)


if __name__ == "__main__":
    sys.exit(cli())
