"""Native kernels of the Qwen3 accuracy harness: C sources per device, the ABI header, the binding."""
