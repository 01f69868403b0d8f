"""Prefill and decode attention serving query head h from kv head h % Hkv (tiled) instead of
h // (Hq / Hkv) (grouped, as transformers' repeat_kv): the native kernels run on kv heads tiled out to Hq.
Caught by the model integration run, at layer 0 attention."""

from operators.backends import load_backend

WRONG_OPERATOR = "attention_prefill"
EXPECTED_LAYER = 0
EXPECTED_POINTS = ("attention",)


def tiled(t, query_heads):
    return t.repeat(*([1] * (t.dim() - 2)), query_heads // t.shape[-2], 1)


def backend(device):
    native = load_backend("native", device)

    def attention_prefill(*, out, q, k, v, scale):
        native.kernel("attention_prefill")(out=out, q=q, k=tiled(k, q.shape[-2]), v=tiled(v, q.shape[-2]), scale=scale)

    def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):
        native.kernel("attention_decode")(out=out, q=q, k_cache=tiled(k_cache, q.shape[-2]),
                                          v_cache=tiled(v_cache, q.shape[-2]), seq_lens=seq_lens, scale=scale)

    return native.with_kernels(__name__, {"attention_prefill": attention_prefill,
                                          "attention_decode": attention_decode})
