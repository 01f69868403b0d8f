"""The benchmark's table and the operator specs name the same operators: a spec without a bench
entry, or an entry without a spec, fails here rather than at the first GPU run."""

from operators.bench.shapes import small_f32
from operators.bench.table import bench_table
from operators.core.registry import OPERATOR_NAMES


def test_every_spec_has_a_bench_entry_and_every_entry_a_spec():
    specs, entries = set(OPERATOR_NAMES), set(bench_table())
    assert not specs - entries, f"operator specs without a benchmark entry: {sorted(specs - entries)}"
    assert not entries - specs, f"benchmark entries naming no operator spec: {sorted(entries - specs)}"


def test_every_entry_builds_workloads_of_its_own_operator():
    shapes = small_f32()
    for operator, entry in bench_table().items():
        built = entry.build(shapes, shapes.points(entry.sweep)[0], True)
        assert built and all(w.operator == operator for w in built), f"{operator}: {[w.name for w in built]}"
