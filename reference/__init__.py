"""Pure PyTorch references of the Qwen3 operators, with Hugging Face semantics and casting order.

Each function takes `upcast`, the dtype of its internal computation: torch.float32 reproduces
Hugging Face exactly (the same-dtype baseline); torch.float64 on float64 inputs is the reference."""
