"""The tensor-at-a-time checkpoint writer (operators/model/tensor_writer.py) against transformers'
save_pretrained on the same synthetic models: the same files, names, metadata, configs and values,
sharded or not, and transformers loads what it writes."""

import json

import pytest
import torch
from safetensors import safe_open

from operators.model import synthetic
from operators.model.checkpoint import load_checkpoint
from operators.model.synthetic import SYNTHETIC_MODELS, synthetic_checkpoint
from operators.model.tensor_writer import write_by_tensor

MODELS = ("tiny", "tiny-moe")


def written(name: str, directory, shard_bytes: int, workers: int = 1):
    spec = SYNTHETIC_MODELS[name]
    write_by_tensor(synthetic._meta_model(spec, 0, torch.bfloat16), torch.bfloat16,
                    lambda tensor, parameter: synthetic._fill(tensor, f"{name}:0:{parameter}"), directory, shard_bytes,
                    workers)
    return directory


def file_names(directory) -> dict[str, list[str]]:
    names = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            assert handle.metadata() == {"format": "pt"}
            names[path.name] = sorted(handle.keys())
    return names


@pytest.mark.parametrize("workers", (1, 4))
@pytest.mark.parametrize("name", MODELS)
def test_the_writer_writes_what_save_pretrained_writes(name, workers, tmp_path):
    ours, theirs = written(name, tmp_path, synthetic.SHARD_BYTES, workers), synthetic_checkpoint(name)
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
    for config in ("config.json", "generation_config.json"):
        assert json.loads((ours / config).read_text()) == json.loads((theirs / config).read_text()), config
    assert file_names(ours) == file_names(theirs)
    mine, reference = load_checkpoint(ours).tensors, load_checkpoint(theirs).tensors
    assert mine.keys() == reference.keys()
    assert [key for key in mine if not torch.equal(mine[key], reference[key])] == []


def test_sharded_files_carry_an_index_and_load_in_transformers(tmp_path):
    from transformers import AutoModelForCausalLM

    ours = written("tiny-moe", tmp_path, 16 * 1024, workers=3)  # threads a 16 KiB shard ahead: one tensor or two
    index = json.loads((ours / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in load_checkpoint(ours).tensors.values())
    model = AutoModelForCausalLM.from_pretrained(str(ours), dtype=torch.bfloat16)
    reference = AutoModelForCausalLM.from_pretrained(str(synthetic_checkpoint("tiny-moe")), dtype=torch.bfloat16)
    mine, theirs = model.state_dict(), reference.state_dict()
    assert [key for key in theirs if not torch.equal(mine[key], theirs[key])] == []


def test_models_over_the_in_memory_limit_are_written_a_tensor_at_a_time(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(synthetic, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(synthetic, "write_by_tensor", lambda *a, **k: (calls.append(a), write_by_tensor(*a, **k))[1])
    directory = synthetic_checkpoint("tiny", root=tmp_path)
    assert len(calls) == 1
    mine, reference = load_checkpoint(directory).tensors, load_checkpoint(synthetic_checkpoint("tiny")).tensors
    assert [key for key in reference if not torch.equal(mine[key], reference[key])] == []
