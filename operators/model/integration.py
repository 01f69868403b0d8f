"""One integration comparison: load a checkpoint three ways (our runner in the working dtype, transformers in
the working dtype on the device, transformers in float64 on the CPU on the same rounded weights; or, streamed,
both transformers models on the device with one decoder layer's weights at a time), prefill the prompt through
each with every point captured, and judge ours point by point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from operators.backends.backend import Backend
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.model.checkpoint import Checkpoint, load_checkpoint
from operators.model.compare import PointResult, compare_points, first_failure
from operators.model.config import ModelConfig
from operators.model.next_token import SAMPLING, NextTokenSummary, summarize_logits, uniforms
from operators.model.runner import Qwen3Runner
from operators.model.shared_weights import SharedWeights
from operators.model.streamed import streamed_model
from operators.model.transformers_side import Points, Routing, capture, load_model
from operators.model.transformers_version import check_transformers_version
from operators.model.weights import ModelWeights, arrange_weights


@dataclass
class Models:
    """The checkpoint and both transformers models, loaded once per run."""
    checkpoint: Checkpoint
    dtype: DType
    device: Device
    weights: ModelWeights
    baseline: torch.nn.Module  # transformers in the working dtype, on the device
    reference: torch.nn.Module  # transformers in float64, weights rounded to the working dtype first
    reference_device: str  # where the reference runs: "cpu", or the device when streamed
    streamed: bool = False  # both transformers models hold one decoder layer's weights at a time
    cache: dict[tuple, tuple[Points, Points]] = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.checkpoint.config

    def runner(self, backend: Backend, max_tokens: int) -> Qwen3Runner:
        return Qwen3Runner(backend, self.weights, max_tokens)

    def transformers_points(self, ids: torch.Tensor, routing: Routing | None) -> tuple[Points, Points]:
        """(baseline, reference) points of a prefill of `ids`, MoE routing forced; cached per input."""
        chosen = tuple(tuple(r.flatten().tolist()) for r in (routing or {}).values())
        key = (tuple(ids.tolist()), chosen)
        if key not in self.cache:
            self.cache[key] = (capture(self.baseline, ids, routing), capture(self.reference, ids, routing))
        return self.cache[key]


def load_models(directory: Path, dtype: DType, device: Device, streamed: bool = False) -> Models:
    """The three models; `streamed`: the checkpoint is read straight onto the device for our runner and both
    transformers models run there a decoder layer at a time on our runner's weights (streamed.py,
    shared_weights.py), so neither host memory nor the device holds more than our model and one layer in
    float64, whatever the depth, and no forward reads the files again."""
    check_transformers_version()
    target = device.torch_device()
    if not streamed:
        checkpoint = load_checkpoint(directory)
        moe = checkpoint.config.is_moe
        weights = arrange_weights(checkpoint.tensors, checkpoint.config, dtype.torch, target)
        baseline = load_model(directory, dtype.torch, target, moe)
        reference = load_model(directory, dtype.torch, "cpu", moe).to(torch.float64)
        return Models(checkpoint, dtype, device, weights, baseline, reference, "cpu")
    checkpoint = load_checkpoint(directory, device=target)
    weights = arrange_weights(checkpoint.tensors, checkpoint.config, dtype.torch, target)
    checkpoint.tensors.clear()  # the runner's weights are all that is kept
    shared, moe = SharedWeights(weights), checkpoint.config.is_moe
    baseline = streamed_model(checkpoint.directory, shared, dtype.torch, dtype.torch, target, moe)
    reference = streamed_model(checkpoint.directory, shared, dtype.torch, torch.float64, target, moe)
    return Models(checkpoint, dtype, device, weights, baseline, reference, device.value, streamed=True)


class Recorder:
    """A tap that keeps a copy of every point (on the CPU) and the MoE expert ids of every call."""

    def __init__(self) -> None:
        self.points: dict[tuple[int | None, str], torch.Tensor] = {}
        self.routing: dict[int, list[torch.Tensor]] = {}

    def __call__(self, layer: int | None, point: str, tensor: torch.Tensor) -> None:
        self.points[(layer, point)] = tensor.detach().cpu().clone()
        if point == "moe_ids":
            self.routing.setdefault(layer, []).append(tensor.detach().cpu().clone())

    def chosen(self) -> Routing:
        return {layer: torch.cat(parts) for layer, parts in self.routing.items()}


@dataclass(frozen=True)
class PrefillComparison:
    points: list[PointResult]
    logits: NextTokenSummary
    ours_logits: torch.Tensor
    baseline_logits: torch.Tensor
    reference_logits: torch.Tensor

    @property
    def first_failure(self) -> PointResult | None:
        return first_failure(self.points)

    @property
    def passed(self) -> bool:
        return self.first_failure is None


def compare_prefill(models: Models, backend: Backend, ids: torch.Tensor) -> PrefillComparison:
    recorder, runner = Recorder(), models.runner(backend, ids.shape[0])
    sampled = runner.sample(runner.forward(ids, recorder), uniforms(ids.shape[0]), **SAMPLING)
    base, ref = models.transformers_points(ids, recorder.chosen() or None)
    ours = recorder.points
    results = compare_points(ours, base, ref, models.dtype)
    logits = (ours[(None, "logits")], base[(None, "logits")], ref[(None, "logits")])
    return PrefillComparison(results, summarize_logits(*logits, ids, sampled), *logits)
