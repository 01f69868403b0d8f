"""The JSON Schemas of the benchmark and panel documents (reports/schema/): a panel run, a merge of
two runs and a benchmark document built from measurements validate, every field is described, the
parts shared with the other kinds are the same, and a field planted in a row is named by its path."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from operators import swiglu
from operators.backends import load_backend
from operators.bench import measure as measure_module
from operators.bench.measure import Measurement
from operators.bench.timing import STREAM, Ceilings, Timing
from operators.bench.workload import Workload
from operators.core.case import Regime
from operators.core.device import Device
from operators.core.dtypes import FLOAT_DTYPES, DType
from operators.panel import run as panel_run
from operators.panel.members import Role
from operators.panel.merge import main as merge_main
from reports.benchmark import benchmark_document
from reports.document import write_json
from reports.environment import collect_environment
from reports.schema_check import main as check_main, schema_for, schema_kinds, validate

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("benchmark", "panel")
EXITS = (panel_run.EXIT_PASS, panel_run.EXIT_FAIL)
# sdpa-cudnn cannot sit on the CPU (there, an unavailable member); one planted wrong kernel per operator.
MEMBERS = "torch,native,sdpa-cudnn,softmax_without_max_subtraction,swiglu_last_element_unwritten"
PANEL = ["--seeds", "1", "--examples", "2", "--operators", "softmax,swiglu", "--dtypes", "f32,bf16",
         "--members", MEMBERS]


@pytest.fixture(scope="module")
def panels(harness, tmp_path_factory) -> dict[str, Path]:
    """Two cheap panel runs over disjoint seeds, and their merge."""
    folder = tmp_path_factory.mktemp("panel")
    paths = {name: folder / f"{name}.json" for name in ("seed3", "seed4", "merged")}
    for seed in (3, 4):
        assert panel_run.main(["--device", harness.device.value, "--first-seed", str(seed), *PANEL,
                               "--output", str(paths[f"seed{seed}"])]) in EXITS
    assert merge_main([str(paths["seed3"]), str(paths["seed4"]), "--output", str(paths["merged"])]) in EXITS
    return paths


@pytest.fixture(scope="module")
def benchmark_path(tmp_path_factory) -> Path:
    """A benchmark document of every row shape: timed through the real flow (timer replaced: timing
    needs a GPU), timed with FLOPs, failed accuracy, failed the recheck."""
    native = load_backend("native", Device.CPU)
    workload = Workload("swiglu 33x250", swiglu.make_case({"gate": DType.BF16, "up": DType.BF16, "out": DType.BF16},
                                                          (33, 250)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(measure_module, "timed", lambda function: (function(), Timing(0.05, 0.02, STREAM, 1, 20))[1])
        timed = measure_module.measure(workload, native, Device.CPU, compile_baselines=False)
    assert timed.status == "timed" and timed.pytorch_ms, timed.reasons
    large = Workload("swiglu T=4096", swiglu.make_case({"gate": DType.BF16, "up": DType.BF16, "out": DType.BF16},
                                                       (4096, 12288)), flops=1.5e8, large=True)
    results = [timed,
               Measurement(large, "timed", native_ms=0.08, pytorch_ms={"eager": 0.1, "eager+compile": 0.07},
                           bytes=3 * 4096 * 12288 * 2.0),
               Measurement(workload, "accuracy failed", ["out: max_abs 3.2 > limit 0.01"]),
               Measurement(workload, "recheck failed", ["input 'gate' was modified by the timed calls"],
                           native_ms=0.05, bytes=49500.0)]
    document = benchmark_document(results, Ceilings(copy_gb_per_s=4247.4, matmul_tflop_per_s=671.8),
                                  collect_environment("cuda", native), "python -m operators.bench --output b.json",
                                  "2026-12-01 02:33 UTC")
    path = tmp_path_factory.mktemp("benchmark") / "benchmark.json"
    write_json(path, document)
    return path


def errors_of(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    return validate(document, schema_for(document["kind"]))


def test_panel_runs_and_their_merge_validate(harness, panels):
    single, merged = json.loads(panels["seed3"].read_text()), json.loads(panels["merged"].read_text())
    assert {m["name"]: m["available"] for m in single["members"]}["sdpa-cudnn"] is (harness.device is not Device.CPU)
    assert single["wrong_kernels"] and single["judged"] and "missing" not in single
    assert merged["complete"] and merged["missing"] == [] and len(merged["environment"]["runs"]) == 2
    assert isinstance(merged["config"]["command"], list) and len(merged["config"]["runs"]) == 2
    for name in ("seed3", "seed4", "merged"):
        assert errors_of(panels[name]) == [], name


def test_a_panel_with_false_alarms_and_tested_failures_validates(harness, tmp_path, monkeypatch):
    """Two planted wrong kernels seated as a correct member and a kernel under test: their failing
    cases fill false_alarms and tested_failures in full."""
    relabelled = {"swiglu_last_element_unwritten": Role.CORRECT, "rms_norm_weight_not_applied": Role.TESTED}
    members = panel_run.all_members()
    monkeypatch.setattr(panel_run, "all_members", lambda: tuple(
        dataclasses.replace(m, role=relabelled.get(m.name, m.role)) for m in members))
    path = tmp_path / "alarms.json"
    assert panel_run.main(["--device", harness.device.value, "--seeds", "1", "--examples", "2", "--dtypes", "f32",
                           "--operators", "swiglu,rms_norm", "--members", ",".join(["torch", *relabelled]),
                           "--output", str(path)]) == panel_run.EXIT_FAIL
    document = json.loads(path.read_text())
    assert document["false_alarms"] and document["tested_failures"] and document["verdict"] == "fail"
    assert errors_of(path) == []


def test_a_benchmark_document_validates(benchmark_path):
    rows = json.loads(benchmark_path.read_text())["results"]
    assert [row["status"] for row in rows] == ["timed", "timed", "accuracy failed", "recheck failed"]
    assert "tflop_per_s" in rows[1] and rows[1]["target"] and rows[2]["native_us"] is None
    assert errors_of(benchmark_path) == []


def test_the_parts_shared_with_the_other_kinds_are_the_same():
    operators = schema_for("operators")["$defs"]
    benchmark, panel = schema_for("benchmark")["$defs"], schema_for("panel")["$defs"]
    for name in ("environment", "cuda_device", "host_device", "case", "tensor", "dtype"):
        assert benchmark[name] == operators[name], f"benchmark {name} differs from the operators schema's"
    for name in ("environment", "cuda_device", "host_device", "case", "tensor", "dtype", "device", "working_dtype",
                 "profile"):
        assert panel[name] == operators[name], f"panel {name} differs from the operators schema's"
    merged = panel["merged_environment"]
    assert {k: v for k, v in merged["properties"].items() if k != "runs"} == operators["environment"]["properties"]
    assert merged["required"] == [*operators["environment"]["required"], "runs"]
    assert panel["role"]["enum"] == [role.value for role in Role]
    assert panel["regime"]["enum"] == [regime.value for regime in Regime]
    assert panel["short_dtype"]["enum"] == [dtype.short for dtype in FLOAT_DTYPES]


@pytest.mark.parametrize("kind, rows", [("benchmark", "results"), ("panel", "groups")])
def test_an_unknown_field_in_a_row_is_named_by_its_path(panels, benchmark_path, kind, rows):
    document = json.loads((benchmark_path if kind == "benchmark" else panels["merged"]).read_text())
    document[rows][1]["colour"] = "blue"
    assert validate(document, schema_for(kind)) == [f"{rows}[1].colour: unknown field"]


def test_the_command_finds_both_new_schemas(panels, benchmark_path, capsys):
    assert set(KINDS) <= set(schema_kinds())
    assert check_main([str(benchmark_path)]) == 0
    assert check_main([str(panels["merged"])]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{benchmark_path}: valid benchmark 1.1 document",
                                                    f"{panels['merged']}: valid panel 1.0 document"]
    for path in (benchmark_path, panels["seed3"]):
        command = subprocess.run([sys.executable, "-m", "reports.schema_check", str(path)], cwd=ROOT,
                                 capture_output=True, text=True, timeout=60)
        assert command.returncode == 0 and "valid" in command.stdout, command.stdout + command.stderr


def test_a_defect_in_one_run_of_a_merged_environment_is_named_by_its_path(panels):
    document = json.loads(panels["merged"].read_text())
    document["environment"]["runs"][1]["colour"] = "blue"
    assert validate(document, schema_for("panel")) == ["environment.runs[1].colour: unknown field"]
    del document["environment"]["runs"]
    document["environment"].pop("host")
    assert validate(document, schema_for("panel")) == ["environment: missing required field 'host'"]
