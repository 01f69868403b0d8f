"""A transformers model's checkpoint written a tensor at a time, for models larger than host memory: the
model stays on the `meta` device, each tensor is made on the host by `fill` (by several threads, at most
a shard ahead of the writer) and dropped after its shard is written, so memory holds about three shards
(the one being made, the one being written, its serialised copy), whatever the model's size. The files are those `save_pretrained`
writes (config.json with the architecture and dtype, generation_config.json, safetensors with
`{"format": "pt"}`, an index when sharded, sparse layers' experts one per expert as published Qwen3-MoE
checkpoints are); suites/test_tensor_writer.py compares the two writers on the same model."""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import torch

EXPERTS_SUFFIXES = (".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")


def disk_tensors(name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], Callable]]:
    """The files' tensors of parameter `name`: itself, or a sparse layer's stacked experts one per expert
    ([E, 2M, H] gate rows first -> gate_proj and up_proj [M, H]; [E, H, M] -> down_proj), each with the
    function that cuts it out of the parameter."""
    if name.endswith(EXPERTS_SUFFIXES[0]):
        prefix, experts, rows = name[: -len("gate_up_proj")], shape[0], shape[1] // 2
        return [item for e in range(experts) for item in (
            (f"{prefix}{e}.gate_proj.weight", (rows, shape[2]), lambda t, e=e: t[e, :rows]),
            (f"{prefix}{e}.up_proj.weight", (rows, shape[2]), lambda t, e=e: t[e, rows:]))]
    if name.endswith(EXPERTS_SUFFIXES[1]):
        prefix = name[: -len("down_proj")]
        return [(f"{prefix}{e}.down_proj.weight", tuple(shape[1:]), lambda t, e=e: t[e]) for e in range(shape[0])]
    return [(name, shape, lambda t: t)]


def shard_plan(model: torch.nn.Module, dtype: torch.dtype, shard_bytes: int) -> list[list[str]]:
    """The files' tensor names, in parameter order, cut into shards of at most shard_bytes (a larger
    tensor alone)."""
    element = torch.empty((), dtype=dtype).element_size()
    shards: list[list[str]] = [[]]
    used = 0
    for name, parameter in model.named_parameters():
        for disk_name, shape, _ in disk_tensors(name, tuple(parameter.shape)):
            size = element * int(torch.Size(shape).numel())
            if shards[-1] and used + size > shard_bytes:
                shards.append([])
                used = 0
            shards[-1].append(disk_name)
            used += size
    return shards


def made_tensors(model: torch.nn.Module, dtype: torch.dtype, fill: Callable[[torch.Tensor, str], None],
                 ahead_bytes: int, workers: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Each file tensor, in parameter order. Parameters are made on the host by `workers` threads (fill's
    random draws release the GIL; each parameter draws from its own stream, so the values do not depend on
    the order or the threads), at most `ahead_bytes` of them ahead of the writer (one at least)."""
    parameters = list(model.named_parameters())
    element = torch.empty((), dtype=dtype).element_size()

    def make(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        values = torch.empty(shape, dtype=dtype)
        fill(values, name)
        return values

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[tuple[str, tuple[int, ...], Future, int]] = deque()
        queued, ahead = 0, 0
        for name, parameter in parameters:
            shape = tuple(parameter.shape)
            while queued < len(parameters) and (not pending or ahead < ahead_bytes):
                queued_name, queued_parameter = parameters[queued]
                queued_shape = tuple(queued_parameter.shape)
                size = element * queued_parameter.numel()
                pending.append((queued_name, queued_shape, pool.submit(make, queued_name, queued_shape), size))
                queued, ahead = queued + 1, ahead + size
            made_name, _, future, size = pending.popleft()
            assert made_name == name
            values = future.result()
            ahead -= size
            for disk_name, _, cut in disk_tensors(name, shape):
                yield disk_name, cut(values).contiguous()
            del values


def write_by_tensor(model: torch.nn.Module, dtype: torch.dtype, fill: Callable[[torch.Tensor, str], None],
                    directory: Path, shard_bytes: int, workers: int = 1) -> None:
    """Write `model` (on meta; a tied head listed once, as the embedding) to `directory` with each
    parameter's values made by fill(tensor, parameter name), by `workers` threads at most a shard ahead."""
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    config = model.config
    config.architectures = [type(model).__name__]
    config.dtype = dtype
    config.save_pretrained(str(directory))
    GenerationConfig.from_model_config(config).save_pretrained(str(directory))
    plan = shard_plan(model, dtype, shard_bytes)
    files = (["model.safetensors"] if len(plan) == 1 else
             [f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors" for i in range(len(plan))])
    tensors = made_tensors(model, dtype, fill, shard_bytes, workers)
    weight_map, total = {}, 0
    for names, file in zip(plan, files):
        shard = dict(next(tensors) for _ in names)
        assert list(shard) == names
        save_file(shard, str(directory / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in names})
        total += sum(t.numel() * t.element_size() for t in shard.values())
    if len(plan) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
