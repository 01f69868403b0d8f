"""`python -m operators.bench.compare COMMITTED.json RERUN.json`: does a benchmark rerun reproduce a
committed one? Workload by workload, the native time and the speed ratio vs PyTorch of both runs,
and whether the native time moved by more than the noise allowance. Exit 0 when every workload
common to both is within it, 1 when one is not, 2 when the files cannot be compared."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from reports.schemas import DocumentKindError, require_kind

# The median of one kernel on one idle GPU moves by a few percent between runs at large shapes;
# a call that takes a few microseconds is dominated by launch latency, whose run-to-run spread is
# microseconds, not percent. A workload is within noise when its native time moved by at most the
# larger of the two.
RELATIVE_NOISE = 0.10
ABSOLUTE_NOISE_US = 3.0


class CompareError(Exception):
    """The two documents cannot be compared (unreadable, not benchmarks, other cards)."""


@dataclass(frozen=True)
class Row:
    workload: str
    committed_us: float | None
    rerun_us: float | None
    committed_speedup: float | None
    rerun_speedup: float | None

    def moved_us(self) -> float | None:
        if self.committed_us is None or self.rerun_us is None:
            return None
        return self.rerun_us - self.committed_us

    def within_noise(self, relative: float, absolute_us: float) -> bool:
        moved = self.moved_us()
        if moved is None:
            return self.committed_us is None and self.rerun_us is None
        return abs(moved) <= max(relative * self.committed_us, absolute_us)


def load(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CompareError(f"cannot read benchmark results {path}: {error}") from error
    try:
        return dict(require_kind(document, "benchmark", path))
    except DocumentKindError as error:
        raise CompareError(f"{error} (python -m operators.bench --output writes one)") from error


def card(document: dict) -> str:
    device = document.get("environment", {}).get("device") or {}
    return str(device.get("name", "unknown card"))


def rows(committed: dict, rerun: dict) -> list[Row]:
    by_name = {r["workload"]: r for r in rerun.get("results", [])}
    out = []
    for before in committed.get("results", []):
        after = by_name.get(before["workload"])
        if after is None:
            continue
        out.append(Row(before["workload"], before.get("native_us"), after.get("native_us"),
                       before.get("speedup_vs_best_pytorch"), after.get("speedup_vs_best_pytorch")))
    return out


def compare(committed: dict, rerun: dict, relative: float = RELATIVE_NOISE,
            absolute_us: float = ABSOLUTE_NOISE_US) -> tuple[list[Row], list[Row]]:
    """(all common rows, the rows outside the noise allowance)."""
    if card(committed) != card(rerun):
        raise CompareError(f"the runs are on different cards: {card(committed)} vs {card(rerun)}")
    common = rows(committed, rerun)
    if not common:
        raise CompareError("the two runs have no workload in common")
    return common, [r for r in common if not r.within_noise(relative, absolute_us)]


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(common: list[Row], relative: float, absolute_us: float) -> str:
    body = [[r.workload, _figure(r.committed_us, ".1f"), _figure(r.rerun_us, ".1f"),
             "-" if r.moved_us() is None or not r.committed_us else f"{100 * r.moved_us() / r.committed_us:+.1f}%",
             _figure(r.committed_speedup, ".2f"), _figure(r.rerun_speedup, ".2f"),
             "yes" if r.within_noise(relative, absolute_us) else "NO"] for r in common]
    return tabulate(body, headers=["workload", "committed us", "rerun us", "moved", "committed vs PyTorch",
                                   "rerun vs PyTorch", "within noise"], tablefmt="github")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m operators.bench.compare", description=__doc__)
    p.add_argument("committed", type=Path, help="the committed benchmark JSON")
    p.add_argument("rerun", type=Path, help="a rerun's benchmark JSON, on the same card")
    p.add_argument("--relative", type=float, default=RELATIVE_NOISE, help="allowed relative move of the native time")
    p.add_argument("--absolute-us", type=float, default=ABSOLUTE_NOISE_US,
                   help="allowed absolute move in microseconds (the larger allowance applies)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        common, outside = compare(load(args.committed), load(args.rerun), args.relative, args.absolute_us)
    except CompareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(common, args.relative, args.absolute_us))
    print(f"\n{len(common) - len(outside)}/{len(common)} workloads within noise "
          f"(native time moved by at most {100 * args.relative:.0f}% or {args.absolute_us:g} us)")
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
