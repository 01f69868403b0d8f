"""The benchmark's per-workload flow, with the timer replaced (timing needs a GPU and triton):
a correct kernel is timed; one that passes the accuracy check but misbehaves when called
repeatedly is caught by the judgement after timing."""

import pytest

from operators.backends import load_backend
from operators.bench import measure as measure_module
from operators.bench.timing import CUDA_GRAPH, Timing
from operators.bench.workload import Workload
from operators.core.device import Device
from operators.core.dtypes import DType
from operators import swiglu


def run_three_times(function) -> Timing:
    for _ in range(3):
        function()
    return Timing(median_ms=1.0, spread=0.01, method=CUDA_GRAPH, calls=3, repetitions=1)


@pytest.fixture
def workload():
    dtypes = {"gate": DType.BF16, "up": DType.BF16, "out": DType.BF16}
    return Workload("swiglu 33x250", swiglu.make_case(dtypes, (33, 250)))


def test_a_correct_kernel_is_timed(monkeypatch, workload):
    monkeypatch.setattr(measure_module, "timed", run_three_times)
    monkeypatch.setattr(measure_module, "baselines", lambda *a: {})
    result = measure_module.measure(workload, load_backend("native", Device.CPU), Device.CPU, compile_baselines=False)
    assert result.status == "timed" and result.reasons == [] and result.native_ms == 1.0


def test_a_kernel_that_degrades_under_repetition_fails_the_recheck(monkeypatch, workload):
    monkeypatch.setattr(measure_module, "timed", run_three_times)
    native = load_backend("native", Device.CPU)
    calls = []

    def swiglu_that_mutates_its_input_after_the_first_call(*, out, gate, up):
        native.kernel("swiglu")(out=out, gate=gate, up=up)
        if calls:
            gate.mul_(2)
        calls.append(1)

    broken = native.with_kernels("broken", {"swiglu": swiglu_that_mutates_its_input_after_the_first_call})
    result = measure_module.measure(workload, broken, Device.CPU, compile_baselines=False)
    assert result.status == "recheck failed"
    assert any("input 'gate' was modified" in reason for reason in result.reasons), result.reasons
