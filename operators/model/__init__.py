"""Qwen3 checkpoints: config.json as a ModelConfig, validated safetensors weights, synthetic models.

Import the submodules (`config`, `checkpoint`, `synthetic`); this file imports nothing.
"""
