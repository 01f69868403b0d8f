"""`python -m operators.run`: the table, the JSON report, and the exit codes CI gates on."""

import json
import os
import shlex
import stat
import subprocess
import sys
import threading

import pytest
import torch

from operators.backends import load_backend
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.exits import EXIT_INTERNAL, run_guarded
from operators.core.result import replay_line
from operators.run import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, main
from operators.core.status import STATUS_VARIABLE
from suites.child_process import run_child

SMALL = ["--operators", "rms_norm,rope", "--dtypes", "bf16", "--examples", "3"]


def run(capsys, *arguments):
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SWIGLU_PLUG_IN = """{imports}
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)

    def swiglu(*, out, gate, up):
{body}

    return native.with_kernels({display!r}, {{"swiglu": swiglu}})
"""


def swiglu_plug_in(tmp_path, monkeypatch, module: str, body: str, imports: str = "", display: str = "plug-in") -> str:
    """An importable backend module `module`: the native kernels with swiglu's body replaced (it may
    call `native`); returns the module name for --backend."""
    indented = "\n".join(f"        {line}" for line in body.splitlines())
    (tmp_path / f"{module}.py").write_text(SWIGLU_PLUG_IN.format(imports=imports, body=indented, display=display))
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def test_a_passing_run_prints_the_table_and_writes_the_report(harness, capsys, tmp_path):
    report = tmp_path / "nested" / "operator_results.json"
    code, out, err = run(capsys, *SMALL, "--device", harness.device.value, "--output", str(report))
    assert code == EXIT_PASS, err
    assert "| rms_norm" in out and "min cosine" in out and "disallowed combos rejected" in out
    document = json.loads(report.read_text())
    assert document["schema_version"] and document["verdict"] == "pass"
    assert document["environment"]["torch"] and document["environment"]["native_library"]["build_hash"]
    assert document["config"]["seed"] == 0 and document["config"]["examples"] == 3
    assert set(document["summary"]) == {"rms_norm", "rope"}
    case = document["cases"][0]
    assert case["implementation"]["symbol"] == f"q3_{case['operator']}" and case["implementation"]["calls"] == 1
    assert {"case", "strides"} <= set(case) and case["verdict"] == "pass"
    assert set(document["budgets"]) == {"rms_norm", "rope"} and document["budgets"]["rope"]["justification"]
    assert {"cosine", "max_abs", "max_abs_index", "max_rel", "rel_l2", "ulp_max", "ulp_p99",
            "mismatch_fraction", "error_ratio"} <= set(case["outputs"]["out"]["metrics"])
    assert any(c["allowed"] is False and c["verdict"] == "pass" for c in document["contract"])


def test_the_report_stores_each_case_once_on_a_line_of_its_own_and_replays_it(harness, capsys, tmp_path):
    """Schema 2: no copy of the case JSON beside `case` (the replay line is built from it); the
    replay line a row gives checks that very case again."""
    report = tmp_path / "r.json"
    arguments = ["--operators", "swiglu", "--dtypes", "f16", "--examples", "2", "--no-contract"]
    assert run(capsys, *arguments, "--device", harness.device.value, "--output", str(report))[0] == EXIT_PASS
    text = report.read_text()
    rows = json.loads(text)["cases"]
    for row in rows:
        compact = json.dumps(row["case"], separators=(",", ":"))
        assert text.count(compact) == 1 and text.count(json.dumps(row, separators=(",", ":"))) == 1
    line = replay_line(rows[1])
    assert line.startswith(f"python -m operators.run --device {harness.device.value} --backend native --replay ")
    replay = shlex.split(line)[3:]
    code, out, err = run(capsys, *replay)
    assert code == EXIT_PASS, err
    assert json.loads(out)["case"] == rows[1]["case"]


def test_the_same_seed_draws_the_same_cases(harness, capsys, tmp_path):
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    for report in reports:
        assert run(capsys, *SMALL, "--no-contract", "--output", str(report))[0] == EXIT_PASS
    cases = [[c["case"] for c in json.loads(r.read_text())["cases"]] for r in reports]
    assert cases[0] == cases[1]


def test_a_seed_draws_the_same_cases_whatever_else_is_imported(tmp_path, monkeypatch):
    """Hypothesis would mix the literals of every local module it sees into its draws: importing one
    more module (an edit of the harness, a plug-in backend) must not change what a seed draws."""
    import importlib

    from operators.core.drawing import draw_cases
    from operators.core.registry import get_spec

    spec = get_spec("moe_router")

    def drawn() -> list[str]:
        return [c.compact_json() for c in draw_cases(spec, Device.CPU, DType.F32, 40, 1)]
    before = drawn()
    (tmp_path / "literal_heavy_module.py").write_text(
        "NUMBERS = (" + ", ".join(str(7919 * i + 3) for i in range(1, 400)) + ")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("literal_heavy_module")
    assert drawn() == before


def test_each_dtype_draws_its_own_cases():
    """Three dtypes are three samples of shapes, regimes and layouts, not one sample thrice."""
    from operators.core.drawing import draw_cases
    from operators.core.registry import get_spec

    spec = get_spec("attention_decode")
    shapes = {dtype: [(c.regime, *(t.shape for t in c.inputs.values())) for c in draw_cases(spec, Device.CPU, dtype, 20, 0)]
              for dtype in (DType.F32, DType.F16, DType.BF16)}
    assert shapes[DType.F32] != shapes[DType.F16] != shapes[DType.BF16] != shapes[DType.F32]


def test_a_wrong_kernel_fails_the_run(harness, capsys):
    code, _, err = run(capsys, "--operators", "rope", "--dtypes", "f32", "--examples", "4", "--no-contract",
                       "--backend", "suites.wrong_kernels.rope_gptj_for_neox")
    assert code == EXIT_FAIL
    assert "reproduce: python -m operators.run" in err and "verdict: FAIL" in err



def test_the_replay_line_names_the_module_that_loads_the_plug_in(harness, capsys, tmp_path, monkeypatch):
    """A plug-in's display name ('zeroing kernels') is not what --backend loads: the printed replay
    line names the module, and running it fails the case again."""
    swiglu_plug_in(tmp_path, monkeypatch, "zeroing_backend", "out.zero_()", display="zeroing kernels")
    code, _, err = run(capsys, "--device", harness.device.value, "--backend", "zeroing_backend", "--operators",
                       "swiglu", "--dtypes", "f32", "--examples", "2", "--no-contract")
    assert code == EXIT_FAIL
    line = next(l for l in err.splitlines() if "reproduce: " in l).split("reproduce: ", 1)[1]
    arguments = shlex.split(line)[3:]
    assert arguments[arguments.index("--backend") + 1] == "zeroing_backend", line
    assert main(arguments) == EXIT_FAIL and "failed (seed" in capsys.readouterr().err


def test_a_typed_error_raised_with_its_message_alone_is_a_refusal(harness, capsys, tmp_path, monkeypatch):
    """`raise KernelDTypeError("mixed dtypes")` (no operator) is the refusal it means, not a TypeError
    of the error's own constructor: the dtype-contract checks pass."""
    swiglu_plug_in(tmp_path, monkeypatch, "terse_backend", "if len({out.dtype, gate.dtype, up.dtype}) > 1:\n"
                   "    raise KernelDTypeError('mixed dtypes')\nnative.kernel('swiglu')(out=out, gate=gate, up=up)",
                   imports="from operators.backends import KernelDTypeError")
    code, _, err = run(capsys, "--device", harness.device.value, "--backend", "terse_backend", "--operators",
                       "swiglu", "--examples", "1")
    assert code == EXIT_PASS, err


def test_the_closing_line_counts_operators_not_tested_and_the_report_names_the_plug_in(harness, capsys, tmp_path,
                                                                                       monkeypatch):
    (tmp_path / "only_swiglu_backend.py").write_text(
        "from operators.backends import Backend, load_backend\n\n__version__ = '1.2.3'\n\n"
        "def backend(device):\n    native = load_backend('native', device)\n"
        "    return Backend('only swiglu', device, {'swiglu': native.kernel('swiglu')})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "report.json"
    code, _, err = run(capsys, "--device", harness.device.value, "--backend", "only_swiglu_backend", "--dtypes", "f32",
                       "--examples", "1", "--no-contract", "--output", str(report))
    assert code == EXIT_PASS, err
    closing = err.strip().splitlines()[-1]
    assert "; 16 of 17 operators not tested, the backend has no kernel: " in closing and "rms_norm" in closing
    environment = json.loads(report.read_text())["environment"]
    assert environment["backend"] == {"module": "only_swiglu_backend", "version": "1.2.3"}


def test_a_version_the_backend_states_wins_over_its_module_s(harness, tmp_path, monkeypatch):
    """A wrapper module (version of its own or none) states the wrapped library's version on the Backend."""
    (tmp_path / "wrapping_backend.py").write_text(
        "from dataclasses import replace\nfrom operators.backends import load_backend\n\n__version__ = '1.2.3'\n\n"
        "def backend(device):\n    return replace(load_backend('native', device), version='7.0')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_backend("wrapping_backend", harness.device).version == "7.0"


def test_unsupported_cases_pass_unless_support_is_required(harness, capsys, tmp_path, monkeypatch):
    """A kernel that refuses float16 as unsupported: the run passes with the refusals counted; with
    --require-support it fails, and its report says so."""
    swiglu_plug_in(tmp_path, monkeypatch, "no_half_backend", "if out.dtype == torch.float16:\n"
                   "    raise KernelUnsupportedError('swiglu', 'no float16')\nnative.kernel('swiglu')(out=out, gate=gate, up=up)",
                   imports="import torch\nfrom operators.backends import KernelUnsupportedError")
    arguments = ["--device", harness.device.value, "--backend", "no_half_backend", "--operators", "swiglu",
                 "--dtypes", "f32,f16", "--examples", "2", "--no-contract"]
    code, out, err = run(capsys, *arguments)
    assert code == EXIT_PASS and ", 2 unsupported" in err.strip().splitlines()[-1], err
    support = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines()
               if line.startswith("| swiglu ") and "gate=" in line]  # the support table's rows
    refused = [row for row in support if row[-1] != "0"]
    assert refused and all(row[1] == "gate=f16 up=f16 out=f16" and row[3] == "0" for row in refused), out
    assert sum(int(row[-1]) for row in refused) == 2
    report = tmp_path / "report.json"
    code, _, err = run(capsys, *arguments, "--require-support", "--output", str(report))
    assert code == EXIT_FAIL and "--require-support: 2 cases were refused as unsupported" in err, err
    assert json.loads(report.read_text())["verdict"] == "fail"


@pytest.mark.slow
def test_pytest_counts_unsupported_cases_and_fails_them_only_when_support_is_required(harness, tmp_path, monkeypatch):
    swiglu_plug_in(tmp_path, monkeypatch, "no_half_backend", "if out.dtype == torch.float16:\n"
                   "    raise KernelUnsupportedError('swiglu', 'no float16')\nnative.kernel('swiglu')(out=out, gate=gate, up=up)",
                   imports="import torch\nfrom operators.backends import KernelUnsupportedError")
    command = [sys.executable, "-m", "pytest", "suites/test_operators.py", "-k", "test_operator and swiglu", "-q",
               "-p", "no:cacheprovider", "-o", "addopts=", "--device", harness.device.value, "--dtypes", "f32,f16",
               "--backend", "no_half_backend"]
    counted = run_child(command, harness.device, extra_path=tmp_path)
    assert counted.returncode == 0 and "backend 'no_half_backend' refused " in counted.stdout, counted.stdout[-2000:]
    assert "(neither passed nor failed; --require-support fails them)" in counted.stdout
    required = run_child([*command, "--require-support"], harness.device, extra_path=tmp_path)
    failed = [line for line in required.stdout.splitlines() if line.startswith("FAILED")]
    assert required.returncode == 1 and failed and all("f16-swiglu" in line for line in failed), required.stdout[-2000:]


def test_replay_reruns_one_case(harness, capsys, tmp_path):
    report = tmp_path / "r.json"
    run(capsys, "--operators", "swiglu", "--dtypes", "f16", "--examples", "1", "--no-contract", "--output", str(report))
    case = json.loads(report.read_text())["cases"][0]["case"]
    code, out, _ = run(capsys, "--replay", json.dumps(case))
    assert code == EXIT_PASS and json.loads(out)["verdict"] == "pass"
    code, _, err = run(capsys, "--replay", json.dumps(case), "--backend", "suites.wrong_kernels.swiglu_last_element_unwritten")
    assert code == EXIT_FAIL and "left unwritten" in err


@pytest.mark.parametrize("arguments, words", [
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--operators", "rms_norm,attention_v9"], ["unknown operator", "attention_v9"]),
    (["--dtypes", "f64"], ["f64"]),
    (["--dtypes", "i32"], ["working dtypes"]),
    (["--backend", "no_such_package.backend"], ["could not be imported", "no_such_package"]),
    (["--backend", "json"], ["defines no function backend"]),
    (["--replay", "{not json"], ["--replay"]),
    (["--replay", json.dumps({"operator": "swiglu", "inputs": {"gate": {"shape": [2, "8"], "dtype": "float32"},
                                                              "up": {"shape": [2, 8], "dtype": "float32"}},
                              "outputs": {"out": {"shape": [2, 8], "dtype": "float32"}}})],
     ["--replay", "tensor 'gate'", "shape must be a list of integers", "[2, '8']"]),
])
def test_usage_errors_exit_2_with_one_line(capsys, arguments, words):
    code, _, err = run(capsys, *arguments)
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert all(word in lines[0] for word in words), lines[0]


def test_an_unavailable_device_exits_2(capsys):
    absent = next((d for d in Device if not d.availability().available), None)
    if absent is None:
        pytest.skip("every device is available here")
    code, _, err = run(capsys, "--device", absent.value)
    assert code == EXIT_USAGE and "not available" in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_report_path_exits_2(harness, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, *SMALL, "--no-contract", "--output", str(blocker / "r.json"))
    assert code == EXIT_USAGE and "cannot write" in err


@pytest.mark.parametrize("module", ["operators.run", "operators.integrate", "operators.panel"])
def test_help_and_argument_errors_end_the_watched_command_as_argparse_means(module):
    """--help exits 0 with the help alone; an unknown option exits 2 with argparse's usage line (the
    watched child's own exit, never 'the process ended outside any kernel call')."""
    shown = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == EXIT_PASS and shown.stdout.startswith("usage:") and shown.stderr == ""
    wrong = subprocess.run([sys.executable, "-m", module, "--bogus"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == EXIT_USAGE and "unrecognized arguments: --bogus" in wrong.stderr
    assert "internal error" not in wrong.stderr


def test_the_module_entry_point_prints_no_traceback():
    completed = subprocess.run([sys.executable, "-m", "operators.run", "--device", "tpu"], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == EXIT_USAGE
    assert "Traceback" not in completed.stderr and completed.stderr.startswith("error: unknown device")


@pytest.mark.slow
def test_pytest_seed_draws_other_cases_under_the_ci_profile_and_the_same_ones_again(harness, tmp_path):
    """--seed reseeds the derandomised ci profile: seeds 1 and 2 draw different cases, seed 1 twice
    the same ones."""
    def drawn(seed, name):
        report = tmp_path / f"{name}.json"
        command = [sys.executable, "-m", "pytest", "suites/test_operators.py", "-k", "swiglu and f32", "-q",
                   "-p", "no:cacheprovider", "-o", "addopts=", "--device", harness.device.value,
                   "--report", str(report), *(["--seed", str(seed)] if seed is not None else [])]
        completed = run_child(command, harness.device)
        assert completed.returncode == 0, completed.stdout[-2000:]
        return [c["case"] for c in json.loads(report.read_text())["cases"]]

    first, again, other, default = drawn(1, "a"), drawn(1, "b"), drawn(2, "c"), drawn(None, "d")
    assert first == again and first != other and default not in (first, other)


TYPO_BACKEND = '''
from operators.backends import Backend, Kernel

def swiglu(*, out, gate, up):
    out.copy_(gate)

def backend(device):
    return Backend(name="typo", device=device, kernels={"swigl": Kernel("swigl", swiglu)})
'''


EMPTY_BACKEND = TYPO_BACKEND.replace('{"swigl": Kernel("swigl", swiglu)}', "{}")


def test_a_backend_that_checks_nothing_is_a_usage_error_never_a_pass(harness, capsys, tmp_path, monkeypatch):
    (tmp_path / "typo_backend.py").write_text(TYPO_BACKEND)
    (tmp_path / "empty_backend.py").write_text(EMPTY_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    for extra in ([], ["--operators", "swiglu"]):
        code, _, err = run(capsys, "--device", harness.device.value, "--backend", "typo_backend", *extra)
        assert code == EXIT_USAGE and "kernel name(s) 'swigl' are not operators" in err, err
        code, _, err = run(capsys, "--device", harness.device.value, "--backend", "empty_backend", *extra)
        assert code == EXIT_USAGE and "no kernel for" in err, err
    code, _, err = run(capsys, "--device", harness.device.value, "--operators", "swiglu,rms_norm", "--backend",
                       "suites.wrong_kernels.rms_norm_weight_not_applied", "--examples", "1")
    assert code == EXIT_FAIL  # a backend with both operators runs (and its wrong rms_norm fails)


@pytest.mark.slow
def test_pytest_with_a_backend_that_has_no_operator_errors_instead_of_skipping(harness, tmp_path):
    (tmp_path / "empty_backend.py").write_text(EMPTY_BACKEND)
    command = [sys.executable, "-m", "pytest", "suites/test_operators.py", "-k", "swiglu", "-q", "-p",
               "no:cacheprovider", "-o", "addopts=", "--device", harness.device.value, "--backend", "empty_backend"]
    completed = run_child(command, harness.device, extra_path=tmp_path)
    assert completed.returncode != 0 and "has no kernel for any operator" in completed.stdout, completed.stdout[-2000:]
    assert " skipped" not in completed.stdout.splitlines()[-1]


def test_report_paths_are_checked_before_any_case_runs(harness, capsys, tmp_path):
    code, _, err = run(capsys, *SMALL, "--device", harness.device.value, "--output", str(tmp_path))
    assert code == EXIT_USAGE and "is a directory" in err and "cases" not in err


def test_a_fifo_is_written_through_and_reports_follow_the_umask(harness, capsys, tmp_path):
    """A non-regular target (a FIFO here; /dev/null alike) gets the report written into it, it is
    never replaced by a regular file; a regular report gets the mode the umask gives."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    code, _, err = run(capsys, *SMALL, "--device", harness.device.value, "--output", str(fifo))
    reader.join(timeout=60)
    assert code == EXIT_PASS, err
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(received[0])["verdict"] == "pass"
    previous = os.umask(0o022)
    try:
        report = tmp_path / "report.json"
        assert run(capsys, *SMALL, "--device", harness.device.value, "--output", str(report))[0] == EXIT_PASS
    finally:
        os.umask(previous)
    assert report.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("module, raised", [
    ("starved_native_backend", "KernelOutOfMemoryError('swiglu', 'cannot allocate 1073741824 bytes of scratch')"),
    ("starved_torch_backend", "torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 1.00 GiB')")])
def test_a_kernel_out_of_memory_stops_the_run_instead_of_failing_the_case(harness, capsys, tmp_path, monkeypatch,
                                                                           module, raised):
    """Memory the machine cannot give (other processes on the GPU, a small card) is no wrong result:
    exit 2 with the kernel's message, no FAIL row and no report."""
    swiglu_plug_in(tmp_path, monkeypatch, module, f"raise {raised}",
                   imports="import torch\nfrom operators.backends import KernelOutOfMemoryError")
    report = tmp_path / "report.json"
    code = run_guarded("operators.run", lambda: main([
        "--device", harness.device.value, "--backend", module, "--operators", "swiglu", "--examples", "1",
        "--no-contract", "--output", str(report)]))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "out of device memory" in err and "allocate 1" in err, err
    assert "verdict: FAIL" not in err and not report.exists()


def test_a_kernel_that_exits_the_process_is_a_failed_case(harness, capsys, tmp_path, monkeypatch):
    swiglu_plug_in(tmp_path, monkeypatch, "exiting_backend", "sys.exit(0)", imports="import sys")
    code, _, err = run(capsys, "--device", harness.device.value, "--backend", "exiting_backend", "--operators",
                       "swiglu", "--examples", "1", "--no-contract")
    assert code == EXIT_FAIL and "tried to exit the process" in err and "verdict: FAIL" in err


@pytest.mark.parametrize("kernels, named", [
    ('{"swiglu": 42}', "kernels['swiglu'] is a int, not a Kernel"),
    ('{"swiglu": Kernel("swiglu", 42)}', "the function of kernels['swiglu'] is a int, not callable"),
    ('{"swiglu": Kernel("rms_norm", swiglu)}', "kernels['swiglu'] is a Kernel for 'rms_norm'"),
])
def test_a_malformed_plug_in_is_a_usage_error_before_any_case(harness, capsys, tmp_path, monkeypatch, kernels, named):
    module = f"malformed_backend_{abs(hash(kernels))}"  # one module name per case: imports are cached
    (tmp_path / f"{module}.py").write_text(TYPO_BACKEND.replace('{"swigl": Kernel("swigl", swiglu)}', kernels))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(capsys, "--device", harness.device.value, "--backend", module)
    assert code == EXIT_USAGE and named in err and "cases" not in err + out, err


def test_an_internal_error_exits_3_with_its_traceback_in_a_named_file(capsys, monkeypatch, tmp_path):
    """A harness bug is neither a failed verdict (1) nor a usage error (2)."""
    import operators.run as command

    def broken(argv=None):
        raise KeyError("a bug of the harness")
    monkeypatch.setattr(command, "main", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setenv(STATUS_VARIABLE, str(tmp_path / "status"))  # the watched child's side, in this process
    assert command.cli() == EXIT_INTERNAL
    assert (tmp_path / "status").read_text() == "finished\n"  # it ended as the command meant to
    line = capsys.readouterr().err.strip()
    assert line.startswith("internal error of the harness in operators.run: KeyError") and "\n" not in line
    saved = next(tmp_path.glob("operators-run-error-*.txt"))
    assert str(saved) in line and "a bug of the harness" in saved.read_text() and "Traceback" in saved.read_text()


def test_out_of_device_memory_is_an_environment_error(capsys, monkeypatch, tmp_path):
    import operators.run as command

    def exhausted(argv=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB.\nmore detail")
    monkeypatch.setattr(command, "main", exhausted)
    monkeypatch.setenv(STATUS_VARIABLE, str(tmp_path / "status"))
    assert command.cli() == EXIT_USAGE
    assert capsys.readouterr().err.strip() == ("error: operators.run: out of device memory: CUDA out of memory. "
                                               "Tried to allocate 12.00 GiB.")


def test_list_names_every_operator_dtype_and_profile(capsys):
    from operators.core.profiles import PROFILES
    from operators.core.registry import OPERATOR_NAMES
    with pytest.raises(SystemExit) as stop:
        main(["--list"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert all(f"  {name} " in out for name in OPERATOR_NAMES) and "working dtypes: f32, f16, bf16" in out
    assert all(f"{profile} (" in out for profile in PROFILES)


def test_the_run_and_the_integration_write_files_only_where_asked():
    """Neither command leaves a report in the working directory unasked: --output, --junit-xml and
    --markdown have no default in either."""
    from operators.core.run_config import parser as run_parser
    from operators.integrate import parser as integrate_parser
    for parser in (run_parser(), integrate_parser()):
        defaults = {option: parser.get_default(option) for option in ("output", "junit_xml", "markdown")}
        assert defaults == {"output": None, "junit_xml": None, "markdown": None}, parser.prog
