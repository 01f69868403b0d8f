"""`python -m reports.cpu_benchmark RESULTS.json`: the C kernels' pytest-benchmark run
(suites/test_cpu_benchmark.py --benchmark-json) as one table: per workload, the native median beside
PyTorch's best candidate measured in the same run, and the ratio; then the harness's own cost, per case
and per operator."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from operators.core.exits import EXIT_PASS, EXIT_USAGE

TEST = re.compile(r"test_(native|pytorch|harness_cost_per_case)\[(.*)\]")


def rows(document: dict) -> tuple[list[list], list[list]]:
    kernels: dict[str, dict[str, float]] = defaultdict(dict)
    harness: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in document["benchmarks"]:
        match = TEST.fullmatch(bench["name"])
        if not match:
            continue
        kind, parameters = match.groups()
        median = bench["stats"]["median"]
        if kind == "native":
            kernels[bench["group"]]["native"] = median
        elif kind == "pytorch":
            kernels[bench["group"]][parameters.rsplit("-", 1)[1]] = median
        else:
            operator, stage = parameters.split("-")
            harness[operator][stage] = median / bench.get("extra_info", {}).get("cases", 1)
    kernel_rows = []
    for workload, medians in kernels.items():
        native = medians.get("native")
        candidates = {k: v for k, v in medians.items() if k != "native"}
        best = min(candidates.items(), key=lambda item: item[1]) if candidates else None
        kernel_rows.append([workload, _us(native), best[0] if best else "-", _us(best[1] if best else None),
                            f"{best[1] / native:.2f}x" if best and native else "-"])
    harness_rows = [[op, *(_us(s.get(stage)) for stage in ("draw", "reference", "verdict", "boundaries", "reachable"))]
                    for op, s in harness.items()]
    return kernel_rows, harness_rows


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def markdown(document: dict, source: str) -> str:
    kernel_rows, harness_rows = rows(document)
    machine = document.get("machine_info", {})
    lines = [f"# C kernels vs PyTorch on the CPU ({machine.get('cpu', {}).get('brand_raw', machine.get('processor'))})",
             "", f"From `{source}` ({document.get('datetime')}); medians in microseconds; speed-up = PyTorch's best / "
             "native (> 1: the C kernel is faster).", "",
             tabulate(kernel_rows, headers=["workload", "native us", "best PyTorch", "PyTorch us", "speed-up"],
                      tablefmt="github", disable_numparse=True)]
    if harness_rows:
        lines += ["", "## The harness's cost (a ci-profile run in bf16)", "",
                  "Per case: drawing (the profile's cases drawn at once, divided by their number), the reference and "
                  "the verdict. Once per operator and dtype: the search for the boundary classes the drawn cases "
                  "missed. Once per operator and process: the sample that finds the classes it can reach.", "",
                  tabulate(harness_rows, headers=["operator", "draw us/case", "reference us/case", "verdict us/case",
                                                  "boundary search us", "reachable sample us"],
                           tablefmt="github", disable_numparse=True)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.cpu_benchmark", description=__doc__)
    p.add_argument("results", type=Path, help="the --benchmark-json file of suites/test_cpu_benchmark.py")
    args = p.parse_args(argv)
    try:
        document = json.loads(args.results.read_text())
        text = markdown(document, str(args.results))
    except OSError as error:
        print(f"error: cannot read {args.results}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError, TypeError) as error:
        print(f"error: {args.results}: not a pytest-benchmark result ({type(error).__name__}: {error})",
              file=sys.stderr)
        return EXIT_USAGE
    print(text, end="")
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
