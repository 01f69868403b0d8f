import torch


def embedding(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """nn.Embedding as Qwen3Model.embed_tokens uses it: a row gather."""
    return torch.nn.functional.embedding(ids.long(), weight)
