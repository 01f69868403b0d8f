"""The verdict panel: correct implementations pass, every planted wrong kernel is caught, on the
same cases; the document, the tables and the merge of runs over several seeds."""

import json

import pytest

from operators.panel.document import panel_markdown
from operators.panel.merge import main as merge_main
from operators.panel.members import Role, all_members
from operators.panel.run import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, main
from suites.wrong_kernels import WRONG_KERNEL_MODULES

CPU_CORRECT = "torch,sdpa-math,sdpa-flash,blocked"
# Caught through a case value, a NaN, an unwritten element and the dtype contract respectively.
WRONG_SAMPLE = ("attention_missing_scale", "softmax_without_max_subtraction", "swiglu_last_element_unwritten",
                "linear_accepts_f32_weight")


def test_correct_members_pass_and_wrong_kernels_are_caught(harness, tmp_path, capsys):
    """The ci profile's cases (the dev profile over five seeds is `python -m operators.panel`; every
    wrong kernel at 24 cases per dtype is test_selftests)."""
    members = ",".join([CPU_CORRECT, "native", *WRONG_SAMPLE])
    output, markdown = tmp_path / "panel.json", tmp_path / "panel.md"
    code = main(["--device", harness.device.value, "--seeds", "1", "--profile", "ci", "--members", members,
                 "--output", str(output), "--markdown", str(markdown)])
    document = json.loads(output.read_text())
    alarms = [(f["member"], f["operator"], f["dtype"], f["reasons"][:1]) for f in document["false_alarms"]]
    assert document["totals"]["false_alarms"] == 0, alarms
    assert document["totals"]["tested_failures"] == 0, document["tested_failures"][:2]
    wrong = {w["member"]: w for w in document["wrong_kernels"]}
    assert set(wrong) == set(WRONG_SAMPLE)
    assert all(w["caught_seeds"] == 1 and w["expected_reason_seen"] for w in wrong.values()), wrong
    assert code == EXIT_PASS and document["verdict"] == "pass" and document["complete"]
    assert "# Verdict panel: PASS" in markdown.read_text() and "| rms_norm" in capsys.readouterr().out


def test_compiled_hugging_face_formulas_pass(harness, tmp_path):
    """torch.compile (Inductor) of the formulas: few operators, they compile on CI's CPU."""
    output = tmp_path / "compiled.json"
    code = main(["--device", harness.device.value, "--seeds", "1", "--examples", "4", "--members", "compiled",
                 "--operators", "rms_norm,rope,softmax,swiglu", "--dtypes", "f32,bf16", "--output", str(output)])
    document = json.loads(output.read_text())
    assert code == EXIT_PASS, document["false_alarms"][:2]
    assert {g["operator"] for g in document["groups"]} == {"rms_norm", "rope", "softmax", "swiglu"}


def test_a_missed_wrong_kernel_fails_the_panel(harness, tmp_path):
    """A softmax without max subtraction is right on scores of ordinary size: one case of the normal
    regime (and the dtype-contract check) does not show it, and the panel says so."""
    output = tmp_path / "missed.json"
    code = main(["--device", harness.device.value, "--seeds", "1", "--first-seed", "1", "--examples", "1",
                 "--operators", "softmax", "--dtypes", "f32", "--members", "softmax_without_max_subtraction",
                 "--output", str(output)])
    document = json.loads(output.read_text())
    if document["wrong_kernels"][0]["failed"]:
        pytest.skip("the single drawn case happened to expose the bug")
    assert code == EXIT_FAIL and document["totals"]["wrong_missed"] == 1


def test_runs_over_disjoint_seeds_or_operators_merge_and_overlapping_ones_are_refused(harness, tmp_path, capsys):
    members = "torch,native,softmax_without_max_subtraction,swiglu_last_element_unwritten"
    documents = []
    for seed, operator in ((3, "softmax"), (4, "softmax"), (3, "swiglu")):
        documents.append(tmp_path / f"seed{seed}-{operator}.json")
        assert main(["--device", harness.device.value, "--seeds", "1", "--first-seed", str(seed), "--examples", "2",
                     "--operators", operator, "--members", members, "--output", str(documents[-1])]) in (EXIT_PASS, EXIT_FAIL)
    merged = tmp_path / "merged.json"
    assert merge_main([*map(str, documents), "--output", str(merged)]) in (EXIT_PASS, EXIT_FAIL)
    parts = [json.loads(d.read_text()) for d in documents]
    whole = json.loads(merged.read_text())
    assert whole["config"]["seeds"] == [3, 4] and whole["config"]["operators"] == ["swiglu", "softmax"]
    assert whole["totals"]["judgements"] == sum(p["totals"]["judgements"] for p in parts)
    assert {w["member"]: w["seeds"] for w in whole["wrong_kernels"]} == {"softmax_without_max_subtraction": 2,
                                                                          "swiglu_last_element_unwritten": 1}
    assert all(g["seconds"] > 0 for g in whole["groups"]) and "## Time spent per member" in panel_markdown(whole)
    # A merge merged again (seeds added later) keeps one flat list of commands, runs and environments.
    first_two, again = tmp_path / "first-two.json", tmp_path / "again.json"
    assert merge_main([str(documents[0]), str(documents[1]), "--output", str(first_two)]) in (EXIT_PASS, EXIT_FAIL)
    assert merge_main([str(first_two), str(documents[2]), "--output", str(again)]) in (EXIT_PASS, EXIT_FAIL)
    regrouped = json.loads(again.read_text())
    assert regrouped["config"]["command"] == [p["config"]["command"] for p in parts]
    assert [r["seeds"] for r in regrouped["config"]["runs"]] == [[3], [4], [3]]
    assert len(regrouped["environment"]["runs"]) == 3 and "runs" not in regrouped["environment"]["runs"][0]
    assert f"commit {str(parts[0]['environment']['harness']['git_sha'])[:7]}" in panel_markdown(regrouped)
    # A run stopped before its end (a partial report) never reads as a verdict.
    assert panel_markdown({**parts[0], "complete": False}).startswith("# Verdict panel: INCOMPLETE")
    assert merge_main([str(documents[0]), str(documents[0]), "--output", str(tmp_path / "x.json")]) == EXIT_USAGE
    assert "the same seed and operator twice (seed 3 softmax)" in capsys.readouterr().err


def test_a_stopped_run_merges_with_the_pairs_it_finished(harness, tmp_path, monkeypatch, capsys):
    """A run stopped after its first operator keeps that (seed, operator) pair: alone it is an
    incomplete panel (exit 1, the missing pair named), with a run over the missing pair a complete one."""
    import operators.panel.run as panel_run
    members = "torch,native"
    stopped, rest, merged = tmp_path / "stopped.json", tmp_path / "rest.json", tmp_path / "merged.json"
    real_get_spec = panel_run.get_spec

    def stop_at_swiglu(operator):
        if operator == "swiglu":
            raise KeyboardInterrupt("stopped")
        return real_get_spec(operator)

    monkeypatch.setattr(panel_run, "get_spec", stop_at_swiglu)
    with pytest.raises(KeyboardInterrupt):
        main(["--device", harness.device.value, "--seeds", "1", "--first-seed", "3", "--examples", "2",
              "--operators", "softmax,swiglu", "--members", members, "--output", str(stopped)])
    monkeypatch.setattr(panel_run, "get_spec", real_get_spec)
    partial = json.loads(stopped.read_text())
    assert not partial["complete"] and partial["judged"] == [[3, "softmax"]]
    assert merge_main([str(stopped), "--output", str(merged)]) == EXIT_FAIL
    assert "1 (seed, operator) pairs were not judged by any run: seed 3 swiglu" in capsys.readouterr().err
    assert json.loads(merged.read_text())["missing"] == [[3, "swiglu"]]
    assert main(["--device", harness.device.value, "--seeds", "1", "--first-seed", "3", "--examples", "2",
                 "--operators", "swiglu", "--members", members, "--output", str(rest)]) == EXIT_PASS
    assert merge_main([str(stopped), str(rest), "--output", str(merged)]) == EXIT_PASS
    whole = json.loads(merged.read_text())
    assert whole["complete"] and whole["judged"] == [[3, "softmax"], [3, "swiglu"]]
    assert {g["operator"] for g in whole["groups"]} == {"softmax", "swiglu"}


def test_members_and_usage_errors(capsys):
    roles = {m.name: m.role for m in all_members()}
    assert roles["torch"] is Role.CORRECT and roles["native"] is Role.TESTED
    assert all(roles[name] is Role.WRONG for name in WRONG_KERNEL_MODULES)
    assert main(["--members", "torch,nonesuch"]) == EXIT_USAGE
    assert "unknown member(s) nonesuch" in capsys.readouterr().err
    assert main(["--seeds", "0"]) == EXIT_USAGE
    # A panel that would judge nothing is never a PASS (Liger has no CPU kernels).
    assert main(["--device", "cpu", "--members", "liger", "--operators", "rms_norm"]) == EXIT_USAGE
    assert "nothing would be judged" in capsys.readouterr().err
    assert main(["--device", "cpu", "--members", "sdpa-math", "--operators", "rms_norm"]) == EXIT_USAGE


def test_compiled_member_compiles_once_per_rank_not_once_per_shape(harness):
    """Storage offsets never recompile the compiled member, and on the CPU (size-oblivious shapes) neither
    do size-1 dimensions or equal sizes: a long panel run would otherwise spend most of its time in
    Inductor. On CUDA the member compiles with ordinary dynamic shapes (compiled.py says why), which
    specialise each size-1 dimension and may tie dimensions of equal size, so there the bound is one graph
    per rank, set of size-1 dimensions and pattern of equal sizes (the weight's included). Two shapes share
    each of two classes, so a member compiled per shape (static shapes) exceeds the bound on both devices."""
    import torch
    from torch._dynamo.utils import counters

    from operators.core.device import Device
    from operators.panel.compiled import compiled_backend

    def shape_class(shape, weight=64):
        labels: dict[int, int] = {}
        return len(shape), tuple(-1 if size == 1 else labels.setdefault(size, len(labels)) for size in (*shape, weight))

    kernel = compiled_backend(harness.device).kernel("rms_norm")
    device = harness.device.torch_device()
    shapes = [(1, 64), (7, 64), (9, 64), (64, 64), (3, 1, 64), (1, 1, 64), (2, 5, 64), (4, 3, 64)]
    if harness.device is Device.CPU:
        graphs_allowed = len({len(shape) for shape in shapes})
    else:
        graphs_allowed = len({shape_class(shape) for shape in shapes})
    assert graphs_allowed < len(shapes)
    before = counters["stats"]["unique_graphs"]
    for offset, shape in enumerate(shapes, start=1):
        storage = torch.randn(int(torch.tensor(shape).prod()) + offset, device=device)
        x = storage[offset:].view(shape)  # a storage offset, as the placement of inputs gives
        out = torch.empty(shape, device=device)
        kernel(out=out, x=x, weight=torch.ones(64, device=device), eps=1e-6)
        expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6), shape
    assert counters["stats"]["unique_graphs"] - before <= graphs_allowed


def test_compiled_member_falls_back_to_ordinary_dynamic_shapes_when_inductor_cannot_compile_obliviously(
        harness, monkeypatch, capsys):
    """An Inductor that fails to lower a graph size-obliviously (2.11 on CUDA did, for add_rms_norm and
    rope) leaves the member compiled with ordinary dynamic shapes, never a failed (false-alarm) case.
    Size-oblivious compiling is used on the CPU only (see compiled_backend), so the test is too."""
    import torch

    from operators.core.device import Device
    if harness.device is not Device.CPU:
        pytest.skip("the compiled member compiles size-obliviously on the CPU only")

    from operators.core.drawing import draw_cases
    from operators.core.dtypes import DType
    from operators.panel import compiled as compiled_module
    from operators.core.checker import prepare_case, run_kernel
    from operators.core.registry import get_spec
    from operators.core.result import Verdict

    class Failing:
        @staticmethod
        def patch(**options):
            raise torch._inductor.exc.InductorError(RuntimeError("CantSplit: planted"), None)

    monkeypatch.setattr(compiled_module, "shape_config", Failing)
    backend = compiled_module.compiled_backend(harness.device)
    spec = get_spec("rms_norm")
    for case in draw_cases(spec, harness.device, DType.F32, 3, 0):
        result = run_kernel(prepare_case(spec, case, harness.device), backend.kernels["rms_norm"], "compiled")
        assert result.verdict is Verdict.PASS, result.reasons
    notices = [line for line in capsys.readouterr().err.splitlines() if "size-obliviously" in line]
    assert len(notices) == 1 and "CantSplit: planted" in notices[0] and "rms_norm" in notices[0]


def test_a_module_members_replay_line_loads_it_as_a_backend(harness, capsys):
    """blocked / compiled / liger are backend modules: their failures' replay lines name a loadable
    --backend (sdpa-* and torch are members of the panel only)."""
    from operators.panel.members import CORRECT_MEMBERS
    from operators.run import main as run_main
    blocked = next(m for m in CORRECT_MEMBERS if m.name == "blocked").build(harness.device)
    assert blocked.loaded_as == "operators.panel.blocked"
    assert run_main(["--device", harness.device.value, "--backend", blocked.loaded_as, "--operators", "softmax",
                     "--dtypes", "f32", "--examples", "2", "--no-contract"]) == EXIT_PASS, capsys.readouterr().err
