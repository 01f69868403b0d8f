"""The float64 reference of moe_experts upcasts the experts' weights an expert at a time (at
Qwen3-235B-A22B's shapes float64 copies of all of them are 19 GB): no float64 tensor as large as
them is made, and the reference is bit-identical to one computed from full float64 copies."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from operators import moe_experts
from operators.core.checker import compute_expected, prepare_case, to_reference_precision
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.registry import get_spec


class LargestFloat64(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64:
                self.numel = max(self.numel, tensor.numel())
        return result


def test_the_experts_reference_upcasts_one_expert_at_a_time_to_the_same_result():
    dtypes = {"x": DType.BF16, "weights": DType.BF16, "ids": DType.I64, "gate_up": DType.BF16, "down": DType.BF16,
              "out": DType.BF16}
    case = moe_experts.make_case(dtypes, 8, 16, 2, 32, 24, seed=5)
    spec = get_spec("moe_experts")
    prepared = prepare_case(spec, case, Device.CPU)
    weights = [prepared.clean[n] for n in ("gate_up", "down")]
    with LargestFloat64() as largest:
        reference = compute_expected(spec, case, prepared.clean, prepared.masks).reference["out"]
    assert reference.dtype == torch.float64
    assert largest.numel < min(w.numel() for w in weights) // 4, largest.numel
    full = spec.run_reference({n: to_reference_precision(t) for n, t in prepared.clean.items()}, case.attributes,
                              torch.float64)["out"]
    assert torch.equal(reference, full)
