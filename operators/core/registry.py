"""The operators the harness knows, in report order; specs are built when asked for."""

from __future__ import annotations

import importlib

from operators.core.spec import OperatorSpec

OPERATOR_NAMES = ("embedding", "rms_norm", "add_rms_norm", "linear", "rope", "swiglu", "softmax", "causal_softmax",
                  "attention_prefill", "attention_decode", "attention_decode_paged", "kv_cache_write",
                  "kv_cache_write_paged", "argmax", "random_sample", "moe_router", "moe_experts")


def get_spec(name: str) -> OperatorSpec:
    if name not in OPERATOR_NAMES:
        raise ValueError(f"unknown operator '{name}'; expected one of {', '.join(OPERATOR_NAMES)}")
    return importlib.import_module(f"operators.{name}").spec()
