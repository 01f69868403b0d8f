"""The project's native library on bad input: a typed error whose message names the operator, the
tensor, the index and the allowed range; nothing written, no crash. These test the built-in native
library whatever `--backend` says; `test_bad_input.py` sends the contract's bad values to the
backend under test."""

import pytest
import torch

from operators.core.kernel_errors import (KernelDTypeError, KernelShapeError, KernelStrideError, KernelUnsupportedError,
                            KernelValueError)
from operators.backends import load_backend


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


@pytest.fixture
def on(harness):
    device = harness.device.torch_device()
    return lambda *shape, dtype=torch.float32: torch.randn(*shape, device=device).to(dtype)


def assert_rejected(native, operator, error_type, words, out, **arguments):
    before = out.clone()
    with pytest.raises(error_type) as caught:
        native.kernel(operator).settled_call(out=out, **arguments)
    message = str(caught.value)
    assert message.startswith(f"{operator}:"), message
    for word in words:
        assert word in message, message
    assert torch.equal(out.view(torch.uint8) if out.dtype != torch.bool else out, before.view(torch.uint8)), \
        "a rejected call wrote its output"


def test_embedding_rejects_ids_outside_the_vocabulary(native, on, harness):
    ids = torch.tensor([0, 3, 11], device=harness.device.torch_device())
    assert_rejected(native, "embedding", KernelValueError, ["'ids'", "11", "[0, 11)"], on(3, 4), ids=ids,
                    weight=on(11, 4))


def test_embedding_rejects_negative_ids(native, on, harness):
    ids = torch.tensor([-1], device=harness.device.torch_device(), dtype=torch.int32)
    assert_rejected(native, "embedding", KernelValueError, ["'ids'", "-1"], on(1, 4), ids=ids, weight=on(5, 4))


def test_rms_norm_rejects_a_weight_of_the_wrong_size(native, on):
    assert_rejected(native, "rms_norm", KernelShapeError, ["'weight'", "7"], on(2, 8), x=on(2, 8), weight=on(7),
                    eps=1e-6)


def test_rms_norm_rejects_float64(native, on):
    assert_rejected(native, "rms_norm", KernelDTypeError, ["'x'", "float64"], on(2, 8),
                    x=on(2, 8, dtype=torch.float64), weight=on(8), eps=1e-6)


def test_rms_norm_rejects_negative_eps(native, on):
    assert_rejected(native, "rms_norm", KernelValueError, ["eps"], on(2, 8), x=on(2, 8), weight=on(8), eps=-1.0)


def test_linear_rejects_float_vs_half(native, on):
    assert_rejected(native, "linear", KernelDTypeError, ["'weight'", "float32", "float16"],
                    on(2, 5, dtype=torch.float16), x=on(2, 8, dtype=torch.float16), weight=on(5, 8))


def test_linear_rejects_mismatched_features(native, on):
    assert_rejected(native, "linear", KernelShapeError, ["'weight'", "9", "8"], on(2, 5), x=on(2, 8),
                    weight=on(5, 9))


def test_output_with_overlapping_strides_is_rejected(native, on):
    out = on(1, 8).expand(3, 8)  # three rows on one row of memory
    with pytest.raises(KernelStrideError, match="'out'"):
        native.kernel("swiglu")(out=out, gate=on(3, 8), up=on(3, 8))


def test_rope_rejects_an_odd_head_dim(native, on, harness):
    positions = torch.arange(2, device=harness.device.torch_device())
    assert_rejected(native, "rope", KernelShapeError, ["head_dim", "7"], on(2, 1, 7), x=on(2, 1, 7),
                    positions=positions, theta=1e6, layout="neox")


def test_rope_rejects_an_unknown_layout(native, on, harness):
    positions = torch.arange(2, device=harness.device.torch_device())
    assert_rejected(native, "rope", KernelValueError, ["layout"], on(2, 1, 8), x=on(2, 1, 8),
                    positions=positions, theta=1e6, layout="interleaved")


def test_a_non_tensor_argument_is_rejected(native, on):
    with pytest.raises(KernelValueError, match="'gate' must be a torch.Tensor"):
        native.kernel("swiglu")(out=on(2, 3), gate=[[1.0, 2.0, 3.0]] * 2, up=on(2, 3))


def assert_caches_untouched(native, operator, words, k_cache, v_cache, **arguments):
    """A cache write rejected for its indices: typed error, neither cache written."""
    before = k_cache.clone(), v_cache.clone()
    with pytest.raises(KernelValueError) as caught:
        native.kernel(operator).settled_call(k_cache=k_cache, v_cache=v_cache, **arguments)
    message = str(caught.value)
    assert message.startswith(f"{operator}:") and all(word in message for word in words), message
    assert torch.equal(k_cache, before[0]) and torch.equal(v_cache, before[1]), "a rejected call wrote a cache"


@pytest.mark.parametrize("positions, words", [
    ([[0, 5], [3, 3]], ["'positions'", "3 twice for request 1"]),  # a duplicate in the second request only
    ([[0, 1], [2, 8]], ["'positions'", "8 at [1, 1]", "[0, 8)"]),
    ([[-1, 1], [2, 3]], ["'positions'", "-1 at [0, 0]"]),
])
def test_kv_cache_write_rejects_bad_positions(native, on, harness, positions, words):
    device = harness.device.torch_device()
    assert_caches_untouched(native, "kv_cache_write", words, on(2, 8, 2, 4), on(2, 8, 2, 4), k=on(2, 2, 2, 4),
                            v=on(2, 2, 2, 4), positions=torch.tensor(positions, device=device))


@pytest.mark.parametrize("slots, words", [
    ([0, 17, 5, 17], ["'slots'", "17 twice"]),
    ([0, 1, 2, 32], ["'slots'", "32 at [3]", "[0, 32)"]),
])
def test_kv_cache_write_paged_rejects_bad_slots(native, on, harness, slots, words):
    device = harness.device.torch_device()
    assert_caches_untouched(native, "kv_cache_write_paged", words, on(2, 16, 2, 4), on(2, 16, 2, 4),
                            k=on(4, 2, 4), v=on(4, 2, 4), slots=torch.tensor(slots, device=device))


@pytest.mark.parametrize("blocks, block_size, table, lengths, error_type, words", [
    (4, 4, [[0, 1]], [5, 5], KernelShapeError, ["'block_table'", "1 rows for 2 requests"]),
    (4, 0, [[0, 1], [2, 3]], [0, 0], KernelShapeError, ["block_size 0"]),
    (4, 4, [[0, 1], [2, 4]], [5, 5], KernelValueError, ["'block_table'", "4 at [1, 1]", "[0, 4)"]),
    (4, 4, [[0, 1], [2, 3]], [5, 9], KernelValueError, ["'seq_lens'", "9 for request 1", "[1, 8]"]),
])
def test_attention_decode_paged_rejects_a_bad_block_table(native, on, harness, blocks, block_size, table, lengths,
                                                          error_type, words):
    device = harness.device.torch_device()
    assert_rejected(native, "attention_decode_paged", error_type, words, on(2, 1, 4, 8), q=on(2, 1, 4, 8),
                    k_cache=on(blocks, block_size, 2, 8), v_cache=on(blocks, block_size, 2, 8),
                    block_table=torch.tensor(table, device=device), seq_lens=torch.tensor(lengths, device=device),
                    scale=0.35)


def test_a_tensor_on_another_device_is_refused_not_dereferenced(native, harness):
    """A CUDA tensor handed to the CPU library (or a host tensor to the CUDA one) would be read as
    the wrong kind of pointer: the binding refuses it by name first."""
    other = torch.device("meta")  # on no machine is it this backend's device; it has no memory at all
    x = torch.empty(2, 8, device=other)
    with pytest.raises(KernelUnsupportedError, match="rms_norm: tensor 'out' is on meta"):
        native.kernel("rms_norm")(out=torch.empty(2, 8, device=other), x=x, weight=torch.empty(8, device=other),
                                  eps=1e-6)


def test_a_bad_index_on_a_gpu_is_reported_when_settled_and_blocks_checked_writes_until_then(native, on, harness):
    """The CUDA library checks index values on the device without waiting for it: the call returns at
    once and writes nothing; later checked calls write nothing either; settling raises the first
    call's error, worded as at the call; after it, calls write again."""
    if native.settle is None:
        pytest.skip("this library reports every error at the call")
    device = harness.device.torch_device()
    embedding, weight = native.kernel("embedding"), on(11, 4)
    out, later = on(3, 4), on(2, 4)
    before, later_before = out.clone(), later.clone()
    embedding(out=out, ids=torch.tensor([0, 3, 11], device=device), weight=weight)
    embedding(out=later, ids=torch.tensor([1, 2], device=device), weight=weight)
    with pytest.raises(KernelValueError, match=r"^embedding: tensor 'ids' holds 11 at flat position 2, outside the "
                                               r"vocabulary \[0, 11\)$"):
        embedding.settle()
    assert torch.equal(out, before) and torch.equal(later, later_before), "a checked call wrote behind a bad index"
    embedding.settled_call(out=later, ids=torch.tensor([1, 2], device=device), weight=weight)
    assert torch.equal(later, weight[[1, 2]])


@pytest.mark.parametrize("slots, words", [
    ([5, 9, 9, 5], "holds 5 twice"),  # every occurrence of a repeated value counts: 5 comes first
    ([3, 7, 40, 7], "holds 7 twice"),  # 7 (at [1]) before 40 (at [2])
    ([3, 40, 7, 7], "holds 40 at [1], outside [0, 32)"),
])
def test_a_gpu_names_the_first_index_out_of_range_or_repeated(native, on, harness, slots, words):
    if native.settle is None:
        pytest.skip("this library reports every error at the call")
    device = harness.device.torch_device()
    assert_caches_untouched(native, "kv_cache_write_paged", [words], on(2, 16, 2, 4), on(2, 16, 2, 4),
                            k=on(4, 2, 4), v=on(4, 2, 4), slots=torch.tensor(slots, device=device))


def test_a_call_failing_after_its_device_check_leaves_no_error_behind(native, on, harness):
    """A float32 head of 1024 is too wide for the CUDA attention's shared memory: the call fails after
    its seq_lens check (here failing too, 9 > 4) was launched; the check is withdrawn, so the next
    checked call writes and settling raises nothing."""
    if native.settle is None:
        pytest.skip("this library reports every error at the call")
    device = harness.device.torch_device()
    with pytest.raises(KernelUnsupportedError, match="head_dim 1024 is too large"):
        native.kernel("attention_decode")(out=on(1, 1, 2, 1024), q=on(1, 1, 2, 1024), k_cache=on(1, 4, 1, 1024),
                                          v_cache=on(1, 4, 1, 1024), seq_lens=torch.tensor([9], device=device),
                                          scale=0.03)
    weight, out = on(5, 4), on(2, 4)
    native.kernel("embedding").settled_call(out=out, ids=torch.tensor([1, 2], device=device), weight=weight)
    assert torch.equal(out, weight[[1, 2]])


def test_a_library_of_a_few_entry_points_gives_every_adapter_and_names_the_missing_one():
    """A library with only some kernels (the suites' wrong CUDA kernels export three) still yields an
    adapter per operator; only calling one whose entry point it lacks fails, and the error names it."""
    import dataclasses

    from operators.backends.native import cpu_library, current_stream, entry_points
    from operators.core.device import Device

    real = cpu_library()

    class OnlyRmsNorm:
        def __getattr__(self, name):
            if name.startswith("q3_") and name not in ("q3_rms_norm", "q3_abi_version", "q3_last_error",
                                                       "q3_status_string", "q3_take_deferred_error"):
                raise AttributeError(f"undefined symbol: {name}")
            return getattr(real.handle, name)

    library = dataclasses.replace(real, handle=OnlyRmsNorm(), calls=type(real.calls)())
    adapters = entry_points(library, current_stream(Device.CPU), "cpu")
    x, weight, out = torch.randn(2, 8), torch.ones(8), torch.empty(2, 8)
    adapters["rms_norm"][1](out=out, x=x, weight=weight, eps=1e-6)
    assert torch.allclose(out, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6), atol=1e-6)
    assert library.calls["q3_rms_norm"] == 1
    with pytest.raises(KernelUnsupportedError, match="embedding: .* has no entry point q3_embedding"):
        adapters["embedding"][1](out=torch.empty(1, 8), ids=torch.tensor([0]), weight=torch.ones(3, 8))
