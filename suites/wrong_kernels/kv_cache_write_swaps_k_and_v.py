"""kv_cache_write that stores the values in the key cache and the keys in the value cache: prefill
never reads the cache, so only decode steps go wrong."""

from operators.backends import load_backend

WRONG_OPERATOR = "kv_cache_write"
EXPECTED_REASON = "exceeds its budget"


def backend(device):
    native = load_backend("native", device)

    def kv_cache_write(*, k_cache, v_cache, k, v, positions):
        native.kernel("kv_cache_write")(k_cache=k_cache, v_cache=v_cache, k=v, v=k, positions=positions)

    return native.with_kernels(__name__, {WRONG_OPERATOR: kv_cache_write})
