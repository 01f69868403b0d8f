"""`python -m reports.compare OLD NEW`: the drift of operator report NEW against OLD, without running
anything. Exit 0 without a regression, 1 with one (reports/drift.py), 2 for a file that is not an
operators report."""

from __future__ import annotations

import argparse
import sys

from reports.drift import add_drift_options, compare, load_baseline
from reports.schemas import DocumentKindError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.compare", description=__doc__)
    parser.add_argument("baseline", help="the earlier operators report (same seed and profile)")
    parser.add_argument("report", help="the new operators report")
    add_drift_options(parser.add_argument)
    args = parser.parse_args(argv)
    try:
        old, new = load_baseline(args.baseline), load_baseline(args.report)
    except (OSError, ValueError, DocumentKindError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    drift = compare(old, new, args.drift_margin)
    print("\n".join(drift.lines()))
    regressed = drift.regressed(args.fail_on)
    print(f"drift: {'REGRESSION' if regressed else 'none beyond the margin'}", file=sys.stderr)
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
