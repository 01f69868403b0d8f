"""Our runner's weights lent to the streamed transformers models: each decoder layer takes its weights from
the tensors the backend's kernels are given (already rounded to the working dtype and on the device), so a
forward reads nothing from the files and the working-dtype model needs no memory of its own. Since those
tensors are the kernels' inputs, each one's bit sum is taken when the run starts and checked whenever a
transformers layer takes it (the embedding, final norm and head before every forward): a kernel that wrote into its weights fails the run there, naming the weight,
instead of changing what it is compared with. (A write that leaves a tensor's bit sum unchanged is not seen.)"""

from __future__ import annotations

import torch

from operators.model.errors import WeightsWrittenError
from operators.model.weights import ModelWeights, by_transformers_name

SIGNED_BY_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bit_sum(tensor: torch.Tensor) -> int:
    """The sum of the tensor's elements read as signed integers of their size (on its device)."""
    bits = tensor.detach().contiguous().reshape(-1).view(SIGNED_BY_SIZE[tensor.element_size()])
    return int(torch.sum(bits, dtype=torch.int64))


class SharedWeights:
    def __init__(self, weights: ModelWeights) -> None:
        self._tensors = by_transformers_name(weights)
        self._sums = {name: bit_sum(t) for name, t in self._tensors.items()}

    def tensor(self, name: str) -> torch.Tensor:
        """The runner's tensor of transformers parameter `name`, as the run started."""
        if name not in self._tensors:
            raise KeyError(f"the model has no weight {name!r}")
        tensor = self._tensors[name]
        if bit_sum(tensor) != self._sums[name]:
            raise WeightsWrittenError(name)
        return tensor
