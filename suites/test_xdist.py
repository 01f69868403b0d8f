"""`pytest suites/ -n N` (pytest-xdist): the workers' cases reach one report, written once by the
controlling process, the same as without workers; a worker takes a GPU of its own."""

import json
import os
import sys
from pathlib import Path

import pytest

from operators.core.xdist_workers import pin_worker_to_gpu, worker_index
from suites.child_process import run_child

ROOT = Path(__file__).resolve().parent.parent


def checked(report: Path) -> list:
    """Every case of the report with its verdict, in report order."""
    return [(row["case"], row["verdict"]) for row in json.loads(report.read_text())["cases"]]


def test_two_workers_write_the_report_one_process_writes(harness, tmp_path):
    pytest.importorskip("xdist")
    reports = {}
    for workers in ("0", "2"):
        reports[workers] = tmp_path / f"n{workers}.json"
        child = run_child([sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_operators.py"),
                           "-k", "swiglu or rope", "-q", "-p", "no:cacheprovider", "-n", workers,
                           "--device", harness.device.value, "--report", str(reports[workers])], harness.device)
        assert child.returncode == 0, child.stdout[-2000:]
    alone, shared = checked(reports["0"]), checked(reports["2"])
    assert alone and shared == alone
    document = json.loads(reports["2"].read_text())
    assert document["environment"]["native_library"]["build_hash"]


def test_a_worker_is_recognised_by_its_id():
    class Config:
        workerinput = {"workerid": "gw3"}

    assert worker_index(Config()) == 3 and worker_index(object()) is None


def test_workers_take_the_visible_gpus_in_turn(monkeypatch):
    import torch
    chosen = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    physical = []
    for index in range(3):  # each worker process pins itself once, seeing the host's setting
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
        physical.append(pin_worker_to_gpu(index))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == physical[-1]  # what the tests' child processes see
    assert physical == ["4", "6", "4"] and chosen == [0, 1, 0]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pin_worker_to_gpu(5) is None


def test_auto_means_one_worker_per_gpu(monkeypatch):
    import torch
    from operators.pytest_plugin import pytest_xdist_auto_num_workers

    class Config:
        def __init__(self, device):
            self.device = device

        def getoption(self, name):
            return self.device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert pytest_xdist_auto_num_workers(Config("nvidia")) == 4
    assert pytest_xdist_auto_num_workers(Config("cpu")) is None


def test_workers_share_the_cores(monkeypatch):
    import torch
    from operators.core.xdist_workers import share_the_cpus
    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)

    class Worker:
        workerinput = {"workerid": "gw1", "workercount": 4}

    assert share_the_cpus(Worker()) == 4 and set_to == [4]
    assert share_the_cpus(object()) is None and set_to == [4]
