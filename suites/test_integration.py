"""The whole model built from the backend's kernels against transformers (operators.integrate): correct
kernels pass on the dense and MoE synthetic models, and a subtly wrong kernel fails at its own point.

On the CPU the synthetic "tiny" and "tiny-moe" models run; with --device nvidia the dense model is the
synthetic "0.6b" (its first GPU_LAYERS layers: the float64 reference runs on the CPU)."""

import importlib
import json

import pytest
import torch

from operators.backends import load_backend
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.exits import run_guarded
from operators.integrate import LONG_POSITIONS, integrate, main
from operators.model.compare import judge_routing
from operators.model.integration import Models, compare_prefill, load_models
from operators.model.runner import OPERATORS
from operators.model.synthetic import synthetic_checkpoint
from suites.test_native_is_native import RecordTorchOps

# Model-level wrong kernels: each names EXPECTED_LAYER and EXPECTED_POINTS, where the run must first fail.
MODEL_WRONG_KERNELS = ("model_qk_norm_skipped", "model_rope_theta_1e4", "model_gqa_mapping")
PROMPT_TOKENS, STEPS, GPU_LAYERS = 16, 4, 4
# What the runner may ask of PyTorch itself: allocation, views and moving index tensors, never arithmetic.
ALLOCATION_AND_VIEWS = {"aten.empty.memory_format", "aten.empty_like.default", "aten.full.default",
                        "aten.arange.default", "aten.arange.start", "aten.lift_fresh.default", "aten._to_copy.default",
                        "aten.copy_.default", "aten.view.default", "aten.slice.Tensor", "aten.select.int",
                        "aten.unsqueeze.default"}


def model_source(device: Device, moe: bool) -> tuple[str, int | None]:
    if moe or device is Device.CPU:
        return ("tiny-moe" if moe else "tiny"), None
    return "0.6b", GPU_LAYERS


@pytest.fixture(scope="module")
def loaded(harness):
    """(moe, dtype) -> Models, loaded once per module."""
    cache: dict[tuple[bool, DType], Models] = {}

    def get(moe: bool, dtype: DType) -> Models:
        if (moe, dtype) not in cache:
            name, layers = model_source(harness.device, moe)
            cache[(moe, dtype)] = load_models(synthetic_checkpoint(name, layers=layers), dtype, harness.device)
        return cache[(moe, dtype)]
    return get


def prompt(models: Models) -> torch.Tensor:
    return torch.randint(0, models.config.vocab_size, (PROMPT_TOKENS,), generator=torch.Generator().manual_seed(0))


def describe(result) -> str:
    failure = result.prefill.first_failure
    return "decode step logits" if failure is None else f"{failure.where(result.dtype)}: {'; '.join(failure.reasons)}"


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_model_passes(harness, loaded, working_dtype, moe):
    missing = [op for op in OPERATORS if harness.backend.kernel(op) is None]
    if missing:
        pytest.skip(f"backend '{harness.backend.name}' lacks {', '.join(missing)}")
    models = loaded(moe, working_dtype)
    result = integrate(models, harness.backend, prompt(models), STEPS)
    assert result.passed, describe(result)


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_runner_computes_only_in_backend_kernels(harness, loaded, moe):
    models = loaded(moe, DType.BF16)
    runner, ids = models.runner(load_backend("native", harness.device), PROMPT_TOKENS + 1), prompt(models)
    uniform = torch.full((1,), 0.5)
    with RecordTorchOps() as recorder:
        logits = runner.forward(ids)
        runner.sample(runner.forward(runner.greedy(logits[-1:])), uniform, temperature=0.6, top_k=20, top_p=0.95)
    assert set(recorder.ops) <= ALLOCATION_AND_VIEWS, sorted(set(recorder.ops) - ALLOCATION_AND_VIEWS)


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_torch_control_passes(harness, loaded, moe):
    models = loaded(moe, DType.BF16)
    result = integrate(models, load_backend("torch", harness.device), prompt(models), STEPS)
    assert result.passed, describe(result)


@pytest.mark.parametrize("module", MODEL_WRONG_KERNELS)
def test_wrong_kernel_fails_at_its_point(harness, loaded, module):
    wrong = importlib.import_module(f"suites.wrong_kernels.{module}")
    models = loaded(False, DType.BF16)
    failure = compare_prefill(models, wrong.backend(harness.device), prompt(models)).first_failure
    assert failure is not None, f"{module} passed the integration run"
    assert (failure.layer, failure.point) in {(wrong.EXPECTED_LAYER, p) for p in wrong.EXPECTED_POINTS}, \
        f"{module} first failed at {failure.where(DType.BF16)}"


# Operator-level wrong kernels (suites/wrong_kernels) whose bug the model's forward exercises:
# module -> (MoE model?, layer, point of the first failure); None: the prefill passes, the decode check fails.
OPERATOR_BUGS_IN_THE_MODEL = {
    "rms_norm_weight_not_applied": (False, 0, "input_norm"),
    "rope_gptj_for_neox": (False, 0, "rope_q"),
    "embedding_off_by_one": (False, None, "embedding"),
    "attention_mask_off_by_one": (False, 0, "attention"),
    "attention_missing_scale": (False, 0, "attention"),
    "swiglu_last_element_unwritten": (False, 0, "mlp"),  # the poisoned element reaches the MLP output as NaN
    "attention_decode_skips_newest": (False, None, None),
    "moe_router_not_renormalised": (True, 0, "moe_router"),
    "model_rope_theta_1e4": (True, 0, "rope_q"),
}


@pytest.mark.parametrize("module", sorted(OPERATOR_BUGS_IN_THE_MODEL))
def test_operator_bug_fails_the_model_where_it_is(harness, loaded, module):
    moe, layer, point = OPERATOR_BUGS_IN_THE_MODEL[module]
    models = loaded(moe, DType.BF16)
    backend = importlib.import_module(f"suites.wrong_kernels.{module}").backend(harness.device)
    result = integrate(models, backend, prompt(models), STEPS, attribution="never")  # only the point is asked
    failure = result.prefill.first_failure
    found = None if failure is None else (failure.layer, failure.point)
    assert not result.passed, f"{module} passed the integration run"
    assert found == (None if point is None else (layer, point)), f"{module} first failed at {describe(result)}"
    assert result.attribution is None


@pytest.mark.parametrize("module, family", [("attention_decode_skips_newest", "attention"),
                                            ("kv_cache_write_swaps_k_and_v", "kv_cache")])
def test_decode_path_bug_fails_the_decode_check_and_attribution_names_its_family(harness, loaded, module, family):
    """Both bugs show only in decode steps; the attribution tells a cache write from the attention."""
    models = loaded(False, DType.BF16)
    wrong = importlib.import_module(f"suites.wrong_kernels.{module}")
    result = integrate(models, wrong.backend(harness.device), prompt(models), STEPS, attribution="on-failure")
    assert result.prefill.passed and not result.passed
    assert result.attribution is not None and result.attribution[1].family == family, result.attribution


def test_positions_past_2048_catch_a_rope_table_that_wraps_and_the_short_default_prompt_cannot(harness, loaded):
    """The default prompt ends at position 23, where a rope table of 2048 rows is right; a prompt of
    LONG_POSITIONS + 32 tokens (--prompt-tokens) fails it at layer 0's rope."""
    if harness.device is not Device.CPU:
        pytest.skip("the long prompt runs on the CPU's tiny model (its float64 reference is on the host)")
    models = loaded(False, DType.BF16)
    backend = importlib.import_module("suites.wrong_kernels.model_rope_table_wraps_at_2048").backend(harness.device)
    assert compare_prefill(models, backend, prompt(models)).passed
    long_prompt = torch.randint(0, models.config.vocab_size, (LONG_POSITIONS + 32,),
                                generator=torch.Generator().manual_seed(0))
    failure = compare_prefill(models, backend, long_prompt).first_failure
    assert failure is not None and (failure.layer, failure.point) == (0, "rope_q"), failure


def test_cli_writes_the_document(harness, tmp_path, capsys):
    output = tmp_path / "integration.json"
    code = main(["--device", harness.device.value, "--dtype", "bf16", "--steps", "2", "--output", str(output),
                 "--tokens", "1,2,3,4,5,6,7,8"])
    captured = capsys.readouterr()
    document = json.loads(output.read_text())
    assert code == 0, captured.err
    assert document["schema_version"] and document["verdict"] == "pass" and document["first_failure"] is None
    assert document["config"]["prompt_ids"] == list(range(1, 9)) and document["environment"]["torch"]
    assert {"layer", "point", "rel_l2", "budget_use"} <= set(document["points"][0])
    assert "| layer" in captured.out and "verdict: PASS" in captured.err
    assert "note: positions 0-8 only" in captured.err and f"--prompt-tokens {LONG_POSITIONS + 64}" in captured.err


def test_cli_fails_with_exit_1_and_names_the_point(harness, tmp_path, capsys):
    output = tmp_path / "integration.json"
    code = main(["--device", harness.device.value, "--backend", "suites.wrong_kernels.model_gqa_mapping",
                 "--steps", "0", "--output", str(output)])
    assert code == 1
    assert "layer 0, after attention, in bf16" in capsys.readouterr().err
    document = json.loads(output.read_text())
    assert document["verdict"] == "fail" and document["attribution"][1]["family"] == "attention"


def test_a_backend_without_an_operator_the_model_needs_runs_with_a_fallback(harness, tmp_path, capsys, monkeypatch):
    """Without --fallback: exit 2 naming the missing operators; with --fallback torch they come from the
    torch control, the run passes and the document says which ones."""
    (tmp_path / "no_linear_backend.py").write_text(
        "from dataclasses import replace\nfrom operators.backends import load_backend\n\n"
        "def backend(device):\n    native = load_backend('native', device)\n"
        "    return replace(native, name='no linear', kernels={op: k for op, k in native.kernels.items() "
        "if op not in ('linear', 'moe_router')})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    output = tmp_path / "integration.json"
    arguments = ["--device", harness.device.value, "--backend", "no_linear_backend", "--steps", "1",
                 "--output", str(output)]
    assert main(arguments) == 2
    assert ("backend 'no linear' has no kernel for linear, which the model needs; --fallback torch"
            in capsys.readouterr().err)  # moe_router is not named: the dense model does not call it
    assert main([*arguments, "--fallback", "torch"]) == 0, capsys.readouterr().err
    assert "operators from the fallback backend 'torch': linear" in capsys.readouterr().err
    assert json.loads(output.read_text())["config"]["fallback"] == {"backend": "torch", "operators": ["linear"]}


def test_nan_decode_logits_are_reported_as_nan_not_as_a_zero_error(harness, tmp_path, capsys, monkeypatch):
    (tmp_path / "nan_decode_backend.py").write_text(
        "from operators.backends import load_backend\n\n"
        "def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):\n    out.fill_(float('nan'))\n\n"
        "def backend(device):\n"
        "    return load_backend('native', device).with_kernels('nan', {'attention_decode': attention_decode})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    output = tmp_path / "integration.json"
    code = main(["--device", harness.device.value, "--backend", "nan_decode_backend", "--steps", "3",
                 "--output", str(output)])
    captured = capsys.readouterr()
    assert code == 1 and "decode step logits, in bf16 (NaN/Inf)" in captured.err, captured.err
    text = captured.out + captured.err
    assert "elements non-finite in ours" in text and "rel L2 0.000e+00" not in text and "rel L2 inf" not in text
    assert json.loads(output.read_text())["attribution"][0]["first_failure"] == "decode step logits (NaN/Inf)"


BROKEN_EMBEDDING = """
from operators.backends import KernelOutOfMemoryError, KernelValueError, load_backend

def embedding(*, out, ids, weight):
    raise {raised}

def backend(device):
    return load_backend("native", device).with_kernels("broken", {{"embedding": embedding}})
"""


@pytest.mark.parametrize("raised, code", [("KernelValueError('embedding', 'refused')", 1), ("SystemExit(0)", 1),
                                          ("KernelOutOfMemoryError('embedding', 'no memory')", 2),
                                          ("KeyError('its own bug')", 1)])
def test_what_a_kernel_raises_fails_the_kernel(harness, tmp_path, capsys, monkeypatch, raised, code):
    """A kernel's refusal, its own exception or its attempt to exit fails the run (1), as it fails a
    case of operators.run; out of memory is the machine's (2)."""
    module = f"broken_embedding_{code}_{len(raised)}"  # one module name per case: imports are cached
    (tmp_path / f"{module}.py").write_text(BROKEN_EMBEDDING.format(raised=raised))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    arguments = ["--device", harness.device.value, "--backend", module, "--steps", "0", "--output",
                 str(tmp_path / "x.json")]
    assert run_guarded("operators.integrate", lambda: main(arguments)) == code
    err = capsys.readouterr().err
    assert ("a kernel of backend" in err) == (code == 1), err
    if raised.startswith("KeyError"):
        assert f"embedding: kernel raised KeyError: 'its own bug' ({tmp_path / module}.py:5)" in err, err


STARVED_ONCE_EMBEDDING = """
from operators.backends import KernelOutOfMemoryError, load_backend

calls = []

def backend(device):
    native = load_backend("native", device)

    def embedding(*, out, ids, weight):
        calls.append(ids.numel())
        if len(calls) == 1:
            raise KernelOutOfMemoryError("embedding", "cannot allocate scratch")
        native.kernel("embedding")(out=out, ids=ids, weight=weight)

    return native.with_kernels("starved_once", {"embedding": embedding})
"""


def test_a_kernel_out_of_memory_once_is_called_again_after_the_cache_is_released(harness, tmp_path, monkeypatch):
    """A native kernel's scratch comes from outside PyTorch's cache: out of memory once, the runner
    releases that cache and calls it again, and the run is judged on its outputs."""
    (tmp_path / "starved_once_embedding.py").write_text(STARVED_ONCE_EMBEDDING)
    monkeypatch.syspath_prepend(str(tmp_path))
    released = []
    monkeypatch.setattr("operators.core.device.release_cached_memory", released.append)
    arguments = ["--device", harness.device.value, "--backend", "starved_once_embedding", "--steps", "0",
                 "--output", str(tmp_path / "x.json")]
    assert run_guarded("operators.integrate", lambda: main(arguments)) == 0
    calls = __import__("starved_once_embedding").calls
    assert len(calls) >= 2 and calls[0] == calls[1] and len(released) == 1


def test_an_exception_of_the_harness_outside_a_kernel_call_is_a_bug(harness, tmp_path, capsys, monkeypatch):
    """The same exception raised by the runner's own code is never blamed on the kernel (3, traceback saved)."""
    from operators.model.runner import Qwen3Runner

    def broken_linear(self, x, weight):
        raise KeyError("a harness bug")

    monkeypatch.setattr(Qwen3Runner, "linear", broken_linear)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    arguments = ["--device", harness.device.value, "--steps", "0", "--output", str(tmp_path / "x.json")]
    assert run_guarded("operators.integrate", lambda: main(arguments)) == 3
    assert "a kernel of backend" not in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--tokens", "1,99999"], "token ids in [0, 512)"),
    (["--tokens", "a,b"], "comma-separated integers"),
    (["--model-dir", "/nonexistent/qwen3"], "not a directory"),
    (["--backend", "no.such.module"], "could not be imported"),
    (["--dtype", "i32"], "--dtype must be"),
    (["--prompt", "hello"], "needs a tokenizer"),
])
def test_cli_usage_errors_exit_2_in_one_line(tmp_path, capsys, arguments, message):
    assert main([*arguments, "--output", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_routing_judge_allows_near_ties_only():
    ref = torch.tensor([[4.0, 3.0, 1.0, 0.999, -2.0]], dtype=torch.float64)
    base = ref + 0.01  # the same-dtype router's logits err by 0.01: a swap across 0.001 is legitimate
    near_tie, wrong = torch.tensor([[0, 1, 3]]), torch.tensor([[0, 1, 4]])
    assert judge_routing(0, near_tie, ref, base, DType.BF16).passed
    assert not judge_routing(0, wrong, ref, base, DType.BF16).passed


def test_a_checkpoint_with_nan_weights_never_passes(harness, tmp_path, capsys):
    """NaN in the final norm's weight makes transformers' logits NaN too: matching NaN with NaN is no
    PASS (a Qwen3 forward has no non-finite activation)."""
    import shutil

    from safetensors.torch import load_file, save_file

    source = synthetic_checkpoint("tiny")
    shutil.copytree(source, tmp_path / "nan-model")
    weights = load_file(tmp_path / "nan-model" / "model.safetensors")
    weights["model.norm.weight"][3] = float("nan")
    save_file(weights, tmp_path / "nan-model" / "model.safetensors", metadata={"format": "pt"})
    code = main(["--device", harness.device.value, "--model-dir", str(tmp_path / "nan-model"), "--steps", "2",
                 "--tokens", "1,2,3,4,5,6,7,8", "--output", str(tmp_path / "nan.json")])
    err = capsys.readouterr().err
    assert code == 1 and "after final_norm" in err and "verdict: PASS" not in err
    document = json.loads((tmp_path / "nan.json").read_text())
    assert document["verdict"] == "fail" and "non-finite" in " ".join(document["first_failing_point"]["reasons"])


@pytest.mark.parametrize("version, supported", [("4.51.3", False), ("4.57.1", False), ("5.5.4", False),
                                                ("5.6.0", True), ("5.24.0", True), ("6.0.0", False)])
def test_transformers_outside_the_tested_range_exits_2_in_one_line(tmp_path, capsys, monkeypatch, version, supported):
    import transformers

    from operators.model.transformers_version import SUPPORTED, check_transformers_version

    assert check_transformers_version(transformers.__version__)  # the one installed here is supported
    monkeypatch.setattr(transformers, "__version__", version)
    code = main(["--steps", "0", "--output", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip()
    if supported:
        assert code == 0, err
    else:
        assert code == 2 and err == (f"error: transformers {version} is not supported (supported: {SUPPORTED}); "
                                     f"pip install 'transformers{SUPPORTED}'")
