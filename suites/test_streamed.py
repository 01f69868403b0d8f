"""The layer-streamed transformers models (operators/model/streamed.py) on our runner's weights
(shared_weights.py): the same points and greedy tokens as the fully loaded models, bit for bit, with one
decoder layer's weights in memory at a time; a kernel that writes into its weights fails the streamed run
naming the weight; `operators.integrate --stream` reports where the reference ran and the run's peak memory."""

import json

import pytest
import torch

from operators.core.dtypes import DType
from operators.integrate import main
from operators.model.integration import load_models
from operators.model.shared_weights import SharedWeights
from operators.model.streamed import streamed_model
from operators.model.synthetic import synthetic_checkpoint
from operators.model.transformers_side import capture, greedy

MODELS = ("tiny", "tiny-moe")  # dense; sparse, its experts written one per expert as published checkpoints are


@pytest.fixture(scope="module")
def pairs(harness):
    """name -> (fully loaded models, streamed models) of that synthetic checkpoint, bf16."""
    return {name: (load_models(synthetic_checkpoint(name), DType.BF16, harness.device),
                   load_models(synthetic_checkpoint(name), DType.BF16, harness.device, streamed=True))
            for name in MODELS}


def prompt(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (16,), generator=torch.Generator().manual_seed(0))


def streamed_on(name: str, side: str, whole_model: torch.nn.Module, models) -> torch.nn.Module:
    """The streamed model of `side` on the device the fully loaded one runs on (the loaded float64
    reference runs on the CPU, the streamed one on the run's device: the same device gives the same bits)."""
    if whole_model.device == getattr(models, side).device:
        return getattr(models, side)
    return streamed_model(models.checkpoint.directory, SharedWeights(models.weights), torch.bfloat16, torch.float64,
                          whole_model.device, models.config.is_moe)


@pytest.mark.parametrize("side", ["baseline", "reference"])
@pytest.mark.parametrize("name", MODELS)
def test_streamed_models_give_every_point_and_greedy_token_of_the_loaded_ones(pairs, harness, name, side):
    whole = getattr(pairs[name][0], side)
    streamed = streamed_on(name, side, whole, pairs[name][1])
    ids = prompt(pairs[name][0].config.vocab_size)
    loaded, layered = capture(whole, ids), capture(streamed, ids)
    assert loaded.keys() == layered.keys()
    differing = [key for key in loaded if not torch.equal(loaded[key], layered[key])]
    assert differing == [], f"points that differ: {differing[:5]}"
    tokens, rows = greedy(whole, ids, 3)
    streamed_tokens, streamed_rows = greedy(streamed, ids, 3)
    assert torch.equal(tokens, streamed_tokens) and torch.equal(rows, streamed_rows)


@pytest.mark.parametrize("name", MODELS)
def test_a_streamed_model_holds_one_decoder_layer_at_a_time(pairs, name):
    model = pairs[name][1].reference
    layers = model.model.layers

    def materialised() -> list[int]:
        return [i for i, layer in enumerate(layers) if any(p.device.type != "meta" for p in layer.parameters())]

    seen: list[list[int]] = []
    handles = [layer.register_forward_pre_hook(lambda m, a: seen.append(materialised())) for layer in layers]
    try:
        capture(model, prompt(model.config.vocab_size))
    finally:
        for handle in handles:
            handle.remove()
    assert seen == [[i] for i in range(len(layers))], seen
    assert materialised() == [], "layers kept their weights after the forward"
    assert model.model.layers[0].self_attn.q_proj.weight.device.type == "meta"


def test_cli_streamed_run_passes_and_reports_where_and_how_much(harness, tmp_path, capsys):
    output = tmp_path / "integration.json"
    code = main(["--device", harness.device.value, "--synthetic", "tiny-moe", "--stream", "--steps", "2",
                 "--tokens", "1,2,3,4,5,6,7,8", "--output", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(output.read_text())
    assert document["config"]["reference"] == (f"transformers float64 on {harness.device.value} (eager, streamed a "
                                               "decoder layer at a time)")
    peak = document["peak_memory"]
    assert peak["host_gib"] > 0 and (peak["device_gib"] is None) == (harness.device.torch_type == "cpu")
    assert f"peak host {peak['host_gib']} GiB" in captured.err


def test_a_reference_too_large_for_the_host_is_streamed_without_asking(harness, tmp_path, capsys, monkeypatch):
    from operators import integrate

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 256}  # a 1 MiB host: the tiny model's float64 copy is larger
    monkeypatch.setattr(integrate.os, "sysconf", lambda name: pages[name])
    output = tmp_path / "integration.json"
    code = main(["--device", harness.device.value, "--steps", "1", "--tokens", "1,2,3", "--output", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "more than half the host's 0 GiB: streaming it a decoder layer at a time" in captured.err
    assert "streamed a decoder layer at a time" in json.loads(output.read_text())["config"]["reference"]


WEIGHT_WRITING = """
from operators.backends import load_backend

def backend(device):
    native = load_backend("native", device)
    correct = native.kernel("{operator}")

    def written(**arguments):
        correct(**arguments)
        arguments["weight"].view(-1)[-1:].add_(1)  # the bug: one element of its weight written

    return native.with_kernels("writes_its_weight", {{"{operator}": written}})
"""


@pytest.mark.parametrize("operator, weight", [
    ("rms_norm", "model.layers.0.self_attn.q_norm.weight"),  # a layer's weights: q_norm is checked first
    ("embedding", "model.embed_tokens.weight")])  # placed once, not with a layer
def test_a_kernel_that_writes_into_its_weights_fails_the_streamed_run_naming_the_weight(harness, tmp_path, capsys,
                                                                                       monkeypatch, operator, weight):
    """The streamed transformers models share the runner's weights: a kernel's write into one must not become
    what ours is compared with."""
    module = f"weight_writing_{operator}"
    (tmp_path / f"{module}.py").write_text(WEIGHT_WRITING.format(operator=operator))
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["--device", harness.device.value, "--synthetic", "tiny", "--stream", "--steps", "2",
                 "--backend", module, "--tokens", "1,2,3,4"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert (f"the model's weight '{weight}' changed during the run: a kernel of the backend wrote into its "
            "weights") in err, err
