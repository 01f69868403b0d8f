"""Deliberately wrong kernels, one bug per module, each a backend module for `--backend`.

Every module names WRONG_OPERATOR (the only operator it breaks) and EXPECTED_REASON (a phrase
the checker's failure reason must contain), and DEVICES when it runs only on some devices (the
CUDA kernels of `cuda/`). The self-tests prove the suites catch each one."""

WRONG_KERNEL_MODULES = (
    "rms_norm_eps_outside_sqrt",
    "rms_norm_weight_not_applied",
    "rms_norm_long_rows_first_block_only",
    "rope_gptj_for_neox",
    "swiglu_last_element_unwritten",
    "add_rms_norm_mutates_residual",
    "linear_ignores_strides",
    "embedding_off_by_one",
    "embedding_clamps_bad_ids",
    "linear_accepts_f32_weight",
    "linear_float32_as_tf32",
    "attention_mask_off_by_one",
    "attention_gqa_tiled_heads",
    "attention_missing_scale",
    "softmax_without_max_subtraction",
    "attention_decode_skips_newest",
    "kv_cache_write_swaps_k_and_v",
    "random_sample_top_p_wrong_side",
    "random_sample_cumsum_in_input_dtype",
    "random_sample_top_p_before_temperature",
    "moe_router_not_renormalised",
    "argmax_last_index",
    "argmax_ignores_nan",
    "argmax_compares_in_bf16",
    "cuda_swiglu_tail_block",
    "cuda_rms_norm_missing_sync",
    "cuda_attention_decode_gqa_tiled",
)
