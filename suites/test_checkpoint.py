"""Checkpoints: synthetic Qwen3 models written by transformers load back whole, in one layout, the same
for the same seed; a broken checkpoint raises CheckpointError naming the file and the tensor."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from operators.model.checkpoint import expected_shapes, load_checkpoint
from operators.model.config import read_config
from operators.model.errors import CheckpointError
from operators.model.synthetic import SYNTHETIC_MODELS, checkpoint_dir, main, synthetic_checkpoint

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"
EMBEDDING = "model.embed_tokens.weight"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("cache")
        patch.setenv("QWEN3_HARNESS_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def tiny(cache) -> Path:
    return synthetic_checkpoint("tiny", seed=0, dtype=torch.float32)


@pytest.fixture(scope="module")
def tiny_moe(cache) -> Path:
    return synthetic_checkpoint("tiny-moe", seed=0, dtype=torch.float32)


def copy(directory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(directory, tmp_path / directory.name))


def rewrite(directory: Path, change) -> Path:
    """Apply `change` to the tensors of model.safetensors and write them back."""
    tensors = load_file(directory / "model.safetensors")
    change(tensors)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def edit_config(directory: Path, **changes) -> Path:
    raw = json.loads((directory / "config.json").read_text())
    raw.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del raw[key]
    (directory / "config.json").write_text(json.dumps(raw))
    return directory


def hf_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).state_dict()


# --- round trips ---------------------------------------------------------------------------------------------------

def test_tiny_loads_whole_with_the_tied_head_as_the_embedding(tiny):
    checkpoint = load_checkpoint(tiny)
    assert checkpoint.config.architecture == "Qwen3ForCausalLM" and checkpoint.config.tie_word_embeddings
    assert {n: tuple(t.shape) for n, t in checkpoint.tensors.items()} == expected_shapes(checkpoint.config)
    assert "lm_head.weight" not in checkpoint.tensors
    assert checkpoint.lm_head is checkpoint.tensors[EMBEDDING]
    assert not checkpoint.has_tokenizer
    # Exactly what transformers itself reads from the same files.
    reference = hf_state_dict(tiny)
    assert torch.equal(reference.pop("lm_head.weight"), reference[EMBEDDING])
    assert reference.keys() == checkpoint.tensors.keys()
    assert all(torch.equal(reference[n], t) for n, t in checkpoint.tensors.items())


def test_tiny_moe_stacks_the_per_expert_files_as_transformers_does(tiny_moe):
    checkpoint = load_checkpoint(tiny_moe)
    config = checkpoint.config
    assert config.is_moe and config.num_experts == 8 and config.num_experts_per_tok == 2 and config.norm_topk_prob
    assert {n: tuple(t.shape) for n, t in checkpoint.tensors.items()} == expected_shapes(config)
    assert checkpoint.tensors["model.layers.1.mlp.experts.gate_up_proj"].shape == (8, 64, 64)  # [E, 2M, H]
    assert checkpoint.tensors["model.layers.1.mlp.experts.down_proj"].shape == (8, 64, 32)  # [E, H, M]
    # On disk: one matrix per expert, as transformers 5 writes and Qwen3-30B-A3B ships.
    assert "model.layers.0.mlp.experts.7.up_proj.weight" in load_file(tiny_moe / "model.safetensors")
    reference = hf_state_dict(tiny_moe)  # transformers stacks them in memory the same way (gate rows first)
    assert reference.keys() == checkpoint.tensors.keys()
    assert all(torch.equal(reference[n], t) for n, t in checkpoint.tensors.items())


def test_moe_stacked_on_disk_loads_the_same(tiny_moe, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_moe, dtype=torch.float32)
    model.save_pretrained(tmp_path / "stacked", save_original_format=False)
    assert "model.layers.0.mlp.experts.gate_up_proj" in load_file(tmp_path / "stacked" / "model.safetensors")
    stacked, per_expert = load_checkpoint(tmp_path / "stacked").tensors, load_checkpoint(tiny_moe).tensors
    assert stacked.keys() == per_expert.keys()
    assert all(torch.equal(stacked[n], t) for n, t in per_expert.items())


def test_moe_with_dense_layers_follows_the_transformers_rule(tmp_path):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    hf = Qwen3MoeConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                        num_attention_heads=2, num_key_value_heads=1, head_dim=16, num_experts=4,
                        num_experts_per_tok=2, moe_intermediate_size=8, decoder_sparse_step=2, mlp_only_layers=[3])
    Qwen3MoeForCausalLM(hf).save_pretrained(tmp_path)
    checkpoint = load_checkpoint(tmp_path)
    # Sparse where (i + 1) % step == 0 and i is not listed: layer 1 only.
    assert [checkpoint.config.layer_is_moe(i) for i in range(4)] == [False, True, False, False]
    assert "model.layers.1.mlp.experts.gate_up_proj" in checkpoint.tensors
    assert "model.layers.3.mlp.gate_proj.weight" in checkpoint.tensors
    assert checkpoint.tensors["model.layers.0.mlp.down_proj.weight"].shape == (32, 48)


def test_a_sharded_checkpoint_loads_the_same(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).save_pretrained(tmp_path, max_shard_size="40KB")
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    sharded, single = load_checkpoint(tmp_path).tensors, load_checkpoint(tiny).tensors
    assert sharded.keys() == single.keys()
    assert all(torch.equal(sharded[n], t) for n, t in single.items())


def test_dtype_converts_every_tensor(tiny_moe):
    tensors = load_checkpoint(tiny_moe, dtype=torch.bfloat16).tensors
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert {t.dtype for t in load_checkpoint(tiny_moe).tensors.values()} == {torch.float32}


# --- synthetic models ----------------------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_weights_and_global_rng_is_untouched(tmp_path):
    state = torch.random.get_rng_state()
    first = load_checkpoint(synthetic_checkpoint("tiny", seed=3, root=tmp_path / "a")).tensors
    again = load_checkpoint(synthetic_checkpoint("tiny", seed=3, root=tmp_path / "b")).tensors
    other = load_checkpoint(synthetic_checkpoint("tiny", seed=4, root=tmp_path / "a")).tensors
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert all(not torch.equal(first[n], other[n]) for n in first)
    assert {t.dtype for t in first.values()} == {torch.bfloat16}


def test_a_shortened_model_is_the_first_layers_of_the_full_one(tiny, cache):
    short = synthetic_checkpoint("tiny", seed=0, dtype=torch.float32, layers=1)
    assert short.name == "tiny-s0-f32-l1"
    full, part = load_checkpoint(tiny).tensors, load_checkpoint(short).tensors
    assert read_config(short).num_hidden_layers == 1
    assert all(torch.equal(full[n], t) for n, t in part.items())


def test_a_finished_checkpoint_is_reused_not_rewritten(tiny):
    stamp = (tiny / "model.safetensors").stat().st_mtime_ns
    assert synthetic_checkpoint("tiny", seed=0, dtype=torch.float32) == tiny
    assert (tiny / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in tiny.parent.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_the_written_config_reads_back_as_the_spec(tiny, tiny_moe):
    for directory, name in ((tiny, "tiny"), (tiny_moe, "tiny-moe")):
        assert replace(read_config(directory), dtype=None) == SYNTHETIC_MODELS[name].config


def test_the_published_sizes_are_qwen3s():
    big = {n: SYNTHETIC_MODELS[n].config for n in ("0.6b", "8b", "30b-a3b", "32b", "235b-a22b")}
    assert [(s.hidden_size, s.num_hidden_layers, s.num_attention_heads, s.num_key_value_heads) for s in big.values()] \
        == [(1024, 28, 16, 8), (4096, 36, 32, 8), (2048, 48, 32, 4), (5120, 64, 64, 8), (4096, 94, 64, 4)]
    assert big["0.6b"].tie_word_embeddings and not big["8b"].tie_word_embeddings
    assert (big["30b-a3b"].num_experts, big["30b-a3b"].num_experts_per_tok, big["30b-a3b"].moe_intermediate_size) \
        == (128, 8, 768)
    assert (big["235b-a22b"].num_experts, big["235b-a22b"].num_experts_per_tok,
            big["235b-a22b"].moe_intermediate_size) == (128, 8, 1536)


def test_the_cli_prints_the_directory(tmp_path, capsys):
    assert main(["--name", "tiny", "--seed", "0", "--dtype", "f16", "--root", str(tmp_path)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == checkpoint_dir("tiny", 0, torch.float16, tmp_path) and path.name == "tiny-s0-f16"
    assert load_checkpoint(path).tensors[Q_PROJ].dtype == torch.float16
    assert main(["--name", "tiny", "--dtype", "i32", "--root", str(tmp_path)]) == 2


# --- broken checkpoints --------------------------------------------------------------------------------------------

def break_missing_tensor(d: Path) -> tuple[str, ...]:
    rewrite(d, lambda t: t.pop(Q_PROJ))
    return "model.safetensors", Q_PROJ, "missing"


def break_extra_tensor(d: Path) -> tuple[str, ...]:
    rewrite(d, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}))
    return "model.safetensors", "model.layers.0.self_attn.q_proj.bias", "unexpected"


def break_shape(d: Path) -> tuple[str, ...]:
    rewrite(d, lambda t: t.update({Q_PROJ: t[Q_PROJ][:32].clone()}))
    return "model.safetensors", Q_PROJ, "(32, 64)", "(64, 64)"


def break_dtype(d: Path) -> tuple[str, ...]:
    rewrite(d, lambda t: t.update({Q_PROJ: t[Q_PROJ].to(torch.int32)}))
    return "model.safetensors", Q_PROJ, "I32"


def break_truncate(d: Path) -> tuple[str, ...]:
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return ("model.safetensors",)


def break_missing_shard(d: Path) -> tuple[str, ...]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    (d / "model.safetensors").unlink()
    model.save_pretrained(d, max_shard_size="40KB")
    shard = sorted(d.glob("model-*-of-*.safetensors"))[-1]
    shard.unlink()
    return "model.safetensors.index.json", shard.name, "does not exist"


def break_tied_head(d: Path) -> tuple[str, ...]:
    rewrite(d, lambda t: t.update({"lm_head.weight": t[EMBEDDING] + 1}))
    return "model.safetensors", "lm_head.weight", "differs"


def break_untied_head(d: Path) -> tuple[str, ...]:
    edit_config(d, tie_word_embeddings=False)
    return "model.safetensors", "lm_head.weight", "missing"


def break_no_weights(d: Path) -> tuple[str, ...]:
    (d / "model.safetensors").unlink()
    return str(d), "no model.safetensors"


def break_model_type(d: Path) -> tuple[str, ...]:
    edit_config(d, model_type="llama", architectures=["LlamaForCausalLM"])
    return "config.json", "'llama'", "not a Qwen3 model"


def break_no_config(d: Path) -> tuple[str, ...]:
    (d / "config.json").unlink()
    return ("config.json",)


def break_config_json(d: Path) -> tuple[str, ...]:
    (d / "config.json").write_text('{"model_type": "qwen3",')
    return "config.json", "not valid JSON"


def break_required_key(d: Path) -> tuple[str, ...]:
    edit_config(d, num_key_value_heads=None)
    return "config.json", "num_key_value_heads"


def break_rope_scaling(d: Path) -> tuple[str, ...]:
    edit_config(d, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6,
                                    "original_max_position_embeddings": 32768})
    return "config.json", "yarn"


@pytest.mark.parametrize("damage", [
    break_missing_tensor, break_extra_tensor, break_shape, break_dtype, break_truncate, break_missing_shard,
    break_tied_head, break_untied_head, break_no_weights, break_model_type, break_no_config, break_config_json,
    break_required_key, break_rope_scaling,
], ids=lambda f: f.__name__.removeprefix("break_"))
def test_a_broken_checkpoint_is_named(tiny, tmp_path, damage):
    directory = copy(tiny, tmp_path)
    named = damage(directory)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(directory)
    assert all(part in str(error.value) for part in named), str(error.value)


def test_a_tied_head_equal_to_the_embedding_is_accepted_and_dropped(tiny, tmp_path):
    directory = rewrite(copy(tiny, tmp_path), lambda t: t.update({"lm_head.weight": t[EMBEDDING].clone()}))
    assert "lm_head.weight" not in load_checkpoint(directory).tensors


# --- config.json ---------------------------------------------------------------------------------------------------

def write_config(tmp_path: Path, **raw) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(raw))
    return tmp_path


DENSE = dict(model_type="qwen3", vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6)


def test_config_reads_transformers_4_and_5_spellings(tmp_path):
    v4 = read_config(write_config(tmp_path, **DENSE, rope_theta=5e5, rope_scaling=None, torch_dtype="bfloat16"))
    assert (v4.rope_theta, v4.dtype, v4.head_dim) == (5e5, "bfloat16", 128)  # Qwen3Config's head_dim default
    v5 = read_config(write_config(tmp_path, **DENSE, head_dim=16, dtype="float32",
                                  rope_parameters={"rope_type": "default", "rope_theta": 1e6}))
    assert (v5.rope_theta, v5.dtype, v5.head_dim) == (1e6, "float32", 16)
    moe = dict(DENSE, model_type="qwen3_moe", rope_theta=1e6, num_experts_per_tok=2, moe_intermediate_size=8)
    assert read_config(write_config(tmp_path, **moe, num_local_experts=4)).num_experts == 4
    new = read_config(write_config(tmp_path, **moe, num_experts=4))
    assert new.num_experts == 4 and new.head_dim == 16  # Qwen3MoeConfig has no head_dim: hidden // heads


@pytest.mark.parametrize("change, words", [
    ({"rope_theta": None}, "rope_theta"),
    ({"rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 2.0}}, "linear"),
    ({"rope_theta": 1e6, "num_key_value_heads": 3}, "num_key_value_heads"),
    ({"rope_theta": 1e6, "architectures": ["Qwen3ForSequenceClassification"]}, "Qwen3ForSequenceClassification"),
    ({"rope_theta": 1e6, "attention_bias": True}, "attention_bias"),
])
def test_config_rejects(tmp_path, change, words):
    raw = {k: v for k, v in {**DENSE, **change}.items() if v is not None}
    with pytest.raises(CheckpointError, match=words) as error:
        read_config(write_config(tmp_path, **raw))
    assert "config.json" in str(error.value)


@pytest.mark.parametrize("fields", [
    dict(rope_theta=1e4, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),  # both, disagreeing
    dict(rope_theta=5e5),  # the 4.x spelling alone
    dict(rope_parameters={"rope_type": "default", "rope_theta": 2e5}),
    dict(rope_theta=3e5, rope_scaling={"rope_type": "default"}),
])
def test_config_fields_read_as_the_installed_transformers_reads_them(tmp_path, fields):
    """The model transformers builds from config.json and our runner take the same rope theta, head
    dimension and norm epsilon (a disagreement is a false alarm at rope_q on a correct kernel)."""
    from transformers import AutoConfig

    directory = write_config(tmp_path, **DENSE, **fields)
    ours, theirs = read_config(directory), AutoConfig.from_pretrained(directory)
    assert ours.rope_theta == theirs.rope_parameters["rope_theta"]
    assert (ours.head_dim, ours.rms_norm_eps) == (theirs.head_dim, theirs.rms_norm_eps)
