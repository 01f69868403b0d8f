"""`python -m operators.bench.compare`: a rerun within the noise allowance passes, a slower or faster
kernel, a workload that stopped being timed, or a run on another card does not."""

from __future__ import annotations

import json

import pytest

from operators.bench import compare
from reports.schemas import header


def document(card: str, times: dict[str, float | None]) -> dict:
    return {**header("benchmark"), "environment": {"device": {"name": card}},
            "results": [{"workload": name, "native_us": us, "speedup_vs_best_pytorch": None if us is None else 1.0}
                        for name, us in times.items()]}


def run(tmp_path, committed: dict, rerun: dict) -> int:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(committed))
    b.write_text(json.dumps(rerun))
    return compare.main([str(a), str(b)])


def test_rerun_within_noise_passes(tmp_path, capsys):
    committed = document("H", {"rms_norm T=4096": 100.0, "rope T=1": 5.0})
    rerun = document("H", {"rms_norm T=4096": 108.0, "rope T=1": 7.5})  # +8%; +2.5 us on a launch-bound call
    assert run(tmp_path, committed, rerun) == 0
    assert "2/2 workloads within noise" in capsys.readouterr().out


@pytest.mark.parametrize("rerun_us", [112.0, 85.0, None])
def test_moved_or_untimed_workload_fails(tmp_path, capsys, rerun_us):
    committed = document("H", {"rms_norm T=4096": 100.0, "rope T=1": 5.0})
    rerun = document("H", {"rms_norm T=4096": rerun_us, "rope T=1": 5.0})
    assert run(tmp_path, committed, rerun) == 1
    assert "1/2 workloads within noise" in capsys.readouterr().out


def test_other_card_or_not_a_benchmark_is_a_usage_error(tmp_path, capsys):
    assert run(tmp_path, document("H100", {"w": 1.0}), document("H200", {"w": 1.0})) == 2
    assert "different cards" in capsys.readouterr().err
    assert run(tmp_path, {"kind": "operators"}, document("H", {"w": 1.0})) == 2
    assert "not a benchmark document" in capsys.readouterr().err
