"""PNG pictures for a run (matplotlib, an optional extra: pip install 'qwen3-kernel-harness[plots]'):
where a failing case's error sits, how close to its budget each operator runs, and an integration
run's error per layer against the budget line."""

from __future__ import annotations

import hashlib
import importlib
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from operators.core.checker import OnFailure, PreparedCase
from operators.core.result import CaseResult, Verdict
from reports.error_map import ErrorMap, error_maps

CASE_PICTURES_PER_GROUP = 2  # failing cases drawn per operator x dtype
CASE_PICTURES = 24  # and per run
LOWEST_LOG_SHOWN = -3.0  # errors below a thousandth of the budget share one colour


class PicturesUnavailable(RuntimeError):
    """--plots without matplotlib."""


def require_matplotlib() -> None:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise PicturesUnavailable("--plots needs matplotlib: pip install 'qwen3-kernel-harness[plots]' "
                                  "(or pip install matplotlib)") from None


def figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no display needed
    return Figure(figsize=(width, height), layout="constrained")


def case_picture_name(result: CaseResult) -> str:
    """Named by the case itself (two cases of one group may share a data seed)."""
    digest = hashlib.sha1(result.case.compact_json().encode()).hexdigest()[:10]
    return f"case-{result.case.operator}-{result.case.dtype.short}-{digest}.png"


def wants_case_picture(directory: Path, result: CaseResult, since: float) -> bool:
    """Within the limits, counted from the pictures this run wrote (so a run resumed after a crashed
    kernel keeps counting, and pictures of an earlier run do not count)."""
    def written(pattern: str) -> int:
        return sum(path.stat().st_mtime >= since - 1 for path in directory.glob(pattern))
    return (written(f"case-{result.case.operator}-{result.case.dtype.short}-*.png") < CASE_PICTURES_PER_GROUP
            and written("case-*.png") < CASE_PICTURES)


def case_picture_writer(directory: Path, since: float) -> OnFailure:
    """The checker's on_failure hook: draws a failing case's error maps (a drawing that fails is a
    warning, never the case's verdict)."""
    def write(prepared: PreparedCase, views: Mapping[str, Any], result: CaseResult) -> None:
        if not wants_case_picture(directory, result, since):
            return
        try:
            maps = error_maps(prepared, views, result)
            if maps:
                draw_case(result, maps, directory / case_picture_name(result))
        except Exception as error:  # matplotlib's or the map's: the case's verdict stands
            print(f"warning: no picture of the failing {result.case.operator} case: {type(error).__name__}: {error}",
                  file=sys.stderr)
    return write


def run_pictures(directory: Path, results: list[CaseResult], since: float) -> list[Path]:
    """The run's budget-use picture, and the failing cases' pictures this run wrote (a drawing that
    fails is a warning: the reports are written all the same)."""
    budget_use = directory / "budget-use.png"
    try:
        drawn = draw_budget_use(results, budget_use)
    except Exception as error:  # matplotlib's or the file system's
        print(f"warning: no budget-use picture: {type(error).__name__}: {error}", file=sys.stderr)
        drawn = False
    cases = [directory / case_picture_name(r) for r in results if r.verdict is Verdict.FAIL]
    return ([budget_use] if drawn else []) + [p for p in dict.fromkeys(cases)
                                              if p.exists() and p.stat().st_mtime >= since - 1]


def draw_case(result: CaseResult, maps: list[ErrorMap], path: Path) -> None:
    """Per output: log10 of error / budget (red over the budget, blue under; NaN/Inf at the top of the
    scale), beside the reference's magnitude."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator
    fig = figure(12, 3.2 * len(maps) + 1.2)
    axes = fig.subplots(len(maps), 2, squeeze=False)
    for (error_axis, magnitude_axis), m in zip(axes, maps):
        logs = np.log10(np.maximum(m.error, 10.0 ** LOWEST_LOG_SHOWN))
        finite = logs[np.isfinite(logs)]
        top = max(0.1, float(finite.max()) if finite.size else 0.1)
        image = error_axis.imshow(np.where(np.isfinite(logs), logs, top), aspect="auto", interpolation="nearest",
                                  cmap="coolwarm", norm=TwoSlopeNorm(vmin=LOWEST_LOG_SHOWN, vcenter=0.0, vmax=top))
        fig.colorbar(image, ax=error_axis, label="log10(|out - ref| / max-abs budget)")
        non_finite = int(np.isinf(m.error).sum())
        error_axis.set_title(f"'{m.output}': error against the budget {m.limit:.3g}; {int((m.error > 1).sum())} "
                             f"cells over (red)" + (f", {non_finite} NaN/Inf" if non_finite else ""), fontsize=9)
        image = magnitude_axis.imshow(m.magnitude, aspect="auto", interpolation="nearest", cmap="viridis")
        fig.colorbar(image, ax=magnitude_axis, label="|ref|")
        magnitude_axis.set_title(f"'{m.output}': reference magnitude", fontsize=9)
        for axis in (error_axis, magnitude_axis):
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_ylabel(f"rows: {m.rows}", fontsize=8)
            axis.set_xlabel(f"columns: {m.columns}", fontsize=8)
    reasons = textwrap.wrap("; ".join(result.reasons), 150, max_lines=3, placeholder=" ...")
    fig.suptitle("\n".join([f"{result.case.operator} [{result.case.dtype_label()}] seed {result.case.seed}, "
                            f"{result.case.regime.value}: FAIL", *reasons]), fontsize=9)
    fig.savefig(path, dpi=90)


def draw_budget_use(results: Iterable[CaseResult], path: Path) -> bool:
    """Per operator, the cases' budget use by dtype, and the budget (1.0); False when no case was
    measured (nothing drawn)."""
    uses: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.verdict is not Verdict.UNSUPPORTED and r.max_budget_use is not None:
            uses[r.case.operator][r.case.dtype.short].append(r.max_budget_use)
    if not uses:
        return False
    columns = min(4, len(uses))
    rows = -(-len(uses) // columns)
    fig = figure(3.6 * columns, 2.6 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    bins = np.linspace(0.0, 2.0, 41)
    for axis, (operator, by_dtype) in zip(axes, uses.items()):
        axis.hist([np.minimum(v, bins[-1]) for v in by_dtype.values()], bins=bins, stacked=True, label=list(by_dtype))
        axis.axvline(1.0, color="red", linewidth=1)
        worst = max(max(v) for v in by_dtype.values())
        axis.set_title(f"{operator} (max {worst:.3g})", fontsize=9)
        axis.legend(fontsize=7)
        axis.set_xlabel("budget use (1 = the limit; >= 2 in the last bin)", fontsize=7)
    for axis in axes[len(uses):]:
        axis.set_visible(False)
    fig.suptitle("How close to its budget each case runs", fontsize=11)
    fig.savefig(path, dpi=90)
    return True


def integration_pictures(document: Mapping[str, Any], directory: Path) -> list[Path]:
    """The integration's picture, or none with a warning when drawing it fails."""
    try:
        return [draw_integration(document, directory / "integration.png")]
    except Exception as error:  # matplotlib's or the file system's: the reports are written all the same
        print(f"warning: no integration picture: {type(error).__name__}: {error}", file=sys.stderr)
        return []


def draw_integration(document: Mapping[str, Any], path: Path) -> Path:
    """Budget use at every (layer, point) in model order on a log scale, the budget line at 1, failing
    points red, points whose values are NaN/Inf (no budget use) as crosses at the top."""
    points = document["points"]
    uses = [p.get("budget_use") for p in points]
    finite = [u for u in uses if u is not None and u > 0]
    low, high = (min(finite + [1.0]) / 2, max(finite + [1.0]) * 2)
    fig = figure(12, 4)
    axis = fig.subplots()
    axis.set_yscale("log")
    xs = [i for i, u in enumerate(uses) if u is not None]
    axis.plot(xs, [max(uses[i], low) for i in xs], color="grey", linewidth=0.8, zorder=1)
    for passed, colour in ((True, "tab:green"), (False, "tab:red")):
        chosen = [i for i in xs if points[i]["passed"] is passed]
        axis.scatter(chosen, [max(uses[i], low) for i in chosen], s=12, color=colour, zorder=2,
                     label="within budget" if passed else "over budget")
    crosses = [i for i, u in enumerate(uses) if u is None]
    if crosses:
        axis.scatter(crosses, [high] * len(crosses), marker="x", color="black", zorder=2, label="NaN/Inf")
    axis.axhline(1.0, color="red", linewidth=1, label="budget")
    first = next((i for i, p in enumerate(points) if not p["passed"]), None)
    if first is not None:
        axis.annotate(f"first over budget: {points[first]['point']}", (first, max(uses[first] or high, low)),
                      xytext=(10, 10), textcoords="offset points", fontsize=8, arrowprops={"arrowstyle": "->"})
    ticks: dict[int, str] = {}
    for index, p in enumerate(points):
        label = "model" if p["layer"] is None else f"L{p['layer']}"
        if label not in ticks.values():
            ticks[index] = label
    shown = dict(list(ticks.items())[:: max(1, len(ticks) // 30)])
    axis.set_xticks(list(shown), list(shown.values()), fontsize=7)
    axis.set_xlabel("(layer, point) in model order; ticks at each layer's first point")
    axis.set_ylabel("budget use (log)")
    axis.set_ylim(low, high * 1.5)
    axis.legend(fontsize=7)
    config = document["config"]
    axis.set_title(f"{config.get('architecture')} {config.get('dtype')} on {config.get('device')}, backend "
                   f"{config.get('backend')}: {document['verdict'].upper()}"
                   + (f", first over budget at {document['first_failure']}" if document.get("first_failure") else ""),
                   fontsize=10)
    fig.savefig(path, dpi=90)
    return path
