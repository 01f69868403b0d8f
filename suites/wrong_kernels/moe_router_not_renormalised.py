"""moe_router that never renormalises its top-k weights, whatever norm_topk_prob says."""

from operators.backends import load_backend

WRONG_OPERATOR = "moe_router"
EXPECTED_REASON = "exceeds its budget"


def backend(device):
    native = load_backend("native", device)

    def moe_router(*, weights, ids, x, gate_weight, top_k, norm_topk_prob):
        native.kernel("moe_router")(weights=weights, ids=ids, x=x, gate_weight=gate_weight, top_k=top_k,
                                    norm_topk_prob=False)

    return native.with_kernels(__name__, {WRONG_OPERATOR: moe_router})
