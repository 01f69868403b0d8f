"""The native backend: each operator calls one entry point of the C (or CUDA) library."""

from __future__ import annotations

import ctypes
import functools

import torch

from operators.backends.backend import Backend, BackendError
from operators.device import Device
from operators.kernel import Kernel
from operators.kernel_errors import KernelUnsupportedError
from operators.native_library.binding import NativeLibrary
from operators.native_library.binding import describe as describe_tensor
from operators.native_library.build import BuildRecipe, build, cpu_recipe, nvidia_recipe

ROPE_LAYOUTS = {"neox": 0, "gptj": 1}


def load_library(recipe: BuildRecipe) -> NativeLibrary:
    return NativeLibrary.load(build(recipe), recipe.build_hash())


@functools.cache
def cpu_library() -> NativeLibrary:
    return load_library(cpu_recipe())


@functools.cache
def nvidia_library() -> NativeLibrary:
    torch.cuda.init()
    # cuBLAS is loaded by the CUDA library at run time from what PyTorch already holds in the process.
    torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")
    return load_library(nvidia_recipe())


def current_stream(device: Device):
    """The stream argument of every entry point: NULL on the CPU, torch's current stream on CUDA."""
    if device is Device.CPU:
        return lambda: None
    return lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def entry_points(library: NativeLibrary, stream, device_type: str | None) -> dict[str, tuple[str, object]]:
    """operator -> (C symbol, Python adapter taking the kernel's keyword arguments). A tensor on a
    device other than `device_type` is refused before the library could dereference it (None: the
    caller hands the library such tensors on purpose)."""
    def call(symbol, operator, *arguments):
        library.call(symbol, operator, *arguments, stream())

    def describe(operator, name, tensor):
        if device_type is not None and isinstance(tensor, torch.Tensor) and tensor.device.type != device_type:
            raise KernelUnsupportedError(operator, f"tensor '{name}' is on {tensor.device}; the native library of "
                                                   f"this backend takes {device_type} tensors")
        return describe_tensor(operator, name, tensor)

    def embedding(*, out, ids, weight):
        call("q3_embedding", "embedding", describe("embedding", "out", out), describe("embedding", "ids", ids),
             describe("embedding", "weight", weight))

    def rms_norm(*, out, x, weight, eps):
        call("q3_rms_norm", "rms_norm", describe("rms_norm", "out", out), describe("rms_norm", "x", x),
             describe("rms_norm", "weight", weight), ctypes.c_double(eps))

    def add_rms_norm(*, out, sum, x, residual, weight, eps):
        op = "add_rms_norm"
        call("q3_add_rms_norm", op, describe(op, "out", out), describe(op, "sum", sum), describe(op, "x", x),
             describe(op, "residual", residual), describe(op, "weight", weight), ctypes.c_double(eps))

    def linear(*, out, x, weight, bias=None):
        call("q3_linear", "linear", describe("linear", "out", out), describe("linear", "x", x),
             describe("linear", "weight", weight), describe("linear", "bias", bias))

    def rope(*, out, x, positions, theta, layout):
        if layout not in ROPE_LAYOUTS:
            from operators.kernel_errors import KernelValueError
            raise KernelValueError("rope", f"unknown layout '{layout}'; expected one of {sorted(ROPE_LAYOUTS)}")
        call("q3_rope", "rope", describe("rope", "out", out), describe("rope", "x", x),
             describe("rope", "positions", positions), ctypes.c_double(theta),
             ctypes.c_int(ROPE_LAYOUTS[layout]))

    def swiglu(*, out, gate, up):
        call("q3_swiglu", "swiglu", describe("swiglu", "out", out), describe("swiglu", "gate", gate),
             describe("swiglu", "up", up))

    def softmax(*, out, x):
        call("q3_softmax", "softmax", describe("softmax", "out", out), describe("softmax", "x", x))

    def causal_softmax(*, out, x):
        op = "causal_softmax"
        call("q3_causal_softmax", op, describe(op, "out", out), describe(op, "x", x))

    def attention_prefill(*, out, q, k, v, scale):
        op = "attention_prefill"
        call("q3_attention_prefill", op, describe(op, "out", out), describe(op, "q", q), describe(op, "k", k),
             describe(op, "v", v), ctypes.c_double(scale))

    def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):
        op = "attention_decode"
        call("q3_attention_decode", op, describe(op, "out", out), describe(op, "q", q),
             describe(op, "k_cache", k_cache), describe(op, "v_cache", v_cache), describe(op, "seq_lens", seq_lens),
             ctypes.c_double(scale))

    def attention_decode_paged(*, out, q, k_cache, v_cache, block_table, seq_lens, scale):
        op = "attention_decode_paged"
        call("q3_attention_decode_paged", op, describe(op, "out", out), describe(op, "q", q),
             describe(op, "k_cache", k_cache), describe(op, "v_cache", v_cache),
             describe(op, "block_table", block_table), describe(op, "seq_lens", seq_lens), ctypes.c_double(scale))

    def kv_cache_write(*, k_cache, v_cache, k, v, positions):
        op = "kv_cache_write"
        call("q3_kv_cache_write", op, describe(op, "k_cache", k_cache), describe(op, "v_cache", v_cache),
             describe(op, "k", k), describe(op, "v", v), describe(op, "positions", positions))

    def kv_cache_write_paged(*, k_cache, v_cache, k, v, slots):
        op = "kv_cache_write_paged"
        call("q3_kv_cache_write_paged", op, describe(op, "k_cache", k_cache), describe(op, "v_cache", v_cache),
             describe(op, "k", k), describe(op, "v", v), describe(op, "slots", slots))

    def argmax(*, out, logits):
        call("q3_argmax", "argmax", describe("argmax", "out", out), describe("argmax", "logits", logits))

    def random_sample(*, out, logits, random, temperature, top_k, top_p):
        op = "random_sample"
        call("q3_random_sample", op, describe(op, "out", out), describe(op, "logits", logits),
             describe(op, "random", random), ctypes.c_double(temperature), ctypes.c_int64(top_k),
             ctypes.c_double(top_p))

    def moe_router(*, weights, ids, x, gate_weight, top_k, norm_topk_prob):
        op = "moe_router"
        call("q3_moe_router", op, describe(op, "weights", weights), describe(op, "ids", ids), describe(op, "x", x),
             describe(op, "gate_weight", gate_weight), ctypes.c_int64(top_k), ctypes.c_int(int(norm_topk_prob)))

    def moe_experts(*, out, x, weights, ids, gate_up, down):
        op = "moe_experts"
        call("q3_moe_experts", op, describe(op, "out", out), describe(op, "x", x), describe(op, "weights", weights),
             describe(op, "ids", ids), describe(op, "gate_up", gate_up), describe(op, "down", down))

    adapters = {"embedding": embedding, "rms_norm": rms_norm, "add_rms_norm": add_rms_norm, "linear": linear,
                "rope": rope, "swiglu": swiglu, "softmax": softmax, "causal_softmax": causal_softmax,
                "attention_prefill": attention_prefill, "attention_decode": attention_decode,
                "attention_decode_paged": attention_decode_paged, "kv_cache_write": kv_cache_write,
                "kv_cache_write_paged": kv_cache_write_paged, "argmax": argmax, "random_sample": random_sample,
                "moe_router": moe_router, "moe_experts": moe_experts}
    return {op: (f"q3_{op}", adapter) for op, adapter in adapters.items()}


LIBRARIES = {Device.CPU: cpu_library, Device.NVIDIA: nvidia_library}


def native_backend(device: Device) -> Backend:
    if device not in LIBRARIES:
        raise BackendError(f"the native backend has no kernels for device '{device.value}' "
                           f"(native libraries exist for {', '.join(d.value for d in LIBRARIES)})")
    library = LIBRARIES[device]()
    kernels = {}
    for op, (symbol, adapter) in entry_points(library, current_stream(device), device.torch_type).items():
        implementation = {"kind": "native", "symbol": symbol, "library": str(library.path),
                          "build_hash": library.build_hash}
        kernels[op] = Kernel(op, adapter, implementation, functools.partial(library.calls.__getitem__, symbol))
    return Backend(name="native", device=device, kernels=kernels,
                   description=f"C kernels from {library.path.name}",
                   environment={"library": str(library.path), "build_hash": library.build_hash})
