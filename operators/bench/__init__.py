"""Benchmark mode: native kernels timed against PyTorch on Qwen3 shapes (`python -m operators.bench`)."""
