"""`python -m operators.integrate`: Qwen3 built from backend kernels against transformers, point by point.

Prefills the prompt through our runner (working dtype), transformers in the working dtype and transformers
in float64, judges every (layer, point) by the error budget, compares next-token distributions, generates
greedily through both decode paths and checks our decode-step logits. Exit codes: operators/core/exits.py."""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from operators.backends import Backend, BackendError, started
from operators.core.device import Device
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, UsageError, usage_exit
from operators.core.kernel_errors import KernelError, KernelOutOfMemoryError
from operators.core.run_config import add_plots_option, check_plots_option
from operators.core.run_context import RunContext, current_stream
from operators.model.attribution import attribute
from operators.model.checkpoint import expected_shapes
from operators.model.config import read_config
from operators.model.errors import CheckpointError, KernelCallError, WeightsWrittenError
from operators.model.generate import generate
from operators.model.integration import Models, compare_prefill, load_models
from operators.model.runner import model_operators
from reports.integration import (IntegrationResult, attribution_table, build_document, integration_markdown,
                                 points_table, summary_lines)
from operators.model.synthetic import SYNTHETIC_MODELS, synthetic_checkpoint
from operators.model.transformers_version import TransformersVersionError
from operators.core.supervision import watched_command
from operators.core.target import add_backend_option, add_device_option, parse_device, select_backend
from reports.document import json_text, write_text_atomically
from reports.junit import integration_junit_xml
from reports.markdown import picture_lines
from reports.pictures import integration_pictures
from reports.drift import add_drift_options, compare_integration, load_baseline
from reports.environment import collect_environment
from reports.schemas import DocumentKindError

PROMPT_TOKENS = 16  # the default prompt: this many token ids drawn with --seed (a tokenizer is not needed)
# Errors that grow with the position (a cos/sin table too short, the float32 angle pos * inv_freq,
# softmax over thousands of keys) stay hidden in a run whose positions end before this.
LONG_POSITIONS = 2048


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m operators.integrate", description=__doc__)
    add_device_option(p)
    add_backend_option(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model-dir", type=Path, help="a Qwen3 / Qwen3-MoE checkpoint directory")
    source.add_argument("--synthetic", choices=list(SYNTHETIC_MODELS), help="a synthetic checkpoint (default tiny)")
    p.add_argument("--layers", type=int, help="keep the first N layers of the synthetic model")
    p.add_argument("--stream", action="store_true",
                   help="read the checkpoint straight onto the device and run both transformers models there a "
                        "decoder layer at a time (float64 reference included): memory for our model and one layer, "
                        "whatever the depth; chosen without asking when the float64 reference would take more than "
                        "half the host's memory")
    p.add_argument("--dtype", default="bf16", help="working dtype: f32, f16 or bf16 (default bf16)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="prompt text (needs the checkpoint's tokenizer)")
    prompt.add_argument("--tokens", help="prompt as comma-separated token ids")
    p.add_argument("--prompt-tokens", type=int, default=PROMPT_TOKENS,
                   help=f"length of the prompt drawn with --seed (default {PROMPT_TOKENS}; {LONG_POSITIONS}+ "
                        "reaches the positions where rope and long-softmax errors show)")
    p.add_argument("--steps", type=int, default=8, help="greedy generation steps (default 8; 0 skips)")
    p.add_argument("--seed", type=int, default=0, help="synthetic weights and default prompt (default 0)")
    p.add_argument("--attribution", action="store_true", help="attribute the logits error even when passing")
    p.add_argument("--all-points", action="store_true", help="print every (layer, point), not the worst per layer")
    p.add_argument("--fallback", metavar="BACKEND",
                   help="take the operators the model needs and --backend lacks from this backend (e.g. torch); "
                        "the verdict then speaks for the others")
    p.add_argument("--output", type=Path, help="write the JSON document here")
    p.add_argument("--baseline", type=Path, help="an earlier integration document of the same model, dtype and prompt: "
                                                "a point whose budget use rose beyond the margin, or newly failed, "
                                                "fails the run (the first one in model order says where it started)")
    add_drift_options(p.add_argument)
    p.add_argument("--junit-xml", type=Path, help="write one JUnit testcase per (layer, point) and one for the run")
    p.add_argument("--markdown", type=Path, help="write a markdown summary (the points table, logits, generation)")
    add_plots_option(p.add_argument)
    return p


def checkpoint_directory(args: argparse.Namespace) -> Path:
    if args.model_dir is not None:
        if args.layers is not None:
            raise UsageError("--layers applies to --synthetic models only")
        return args.model_dir
    try:
        return synthetic_checkpoint(args.synthetic or "tiny", args.seed, torch.bfloat16, layers=args.layers)
    except ValueError as error:
        raise UsageError(str(error)) from None


def prompt_ids(args: argparse.Namespace, models: Models) -> torch.Tensor:
    vocab = models.config.vocab_size
    if args.tokens is not None:
        try:
            ids = torch.tensor([int(t) for t in args.tokens.split(",") if t.strip()], dtype=torch.int64)
        except ValueError:
            raise UsageError(f"--tokens must be comma-separated integers, got '{args.tokens}'") from None
    elif args.prompt is not None:
        if not models.checkpoint.has_tokenizer:
            raise UsageError(f"--prompt needs a tokenizer; {models.checkpoint.directory} has none (use --tokens)")
        from transformers import AutoTokenizer
        ids = AutoTokenizer.from_pretrained(str(models.checkpoint.directory))(args.prompt, return_tensors="pt")
        ids = ids["input_ids"][0]
    else:
        if args.prompt_tokens < 1:
            raise UsageError(f"--prompt-tokens must be 1 or more, got {args.prompt_tokens}")
        ids = torch.randint(0, vocab, (args.prompt_tokens,), generator=torch.Generator().manual_seed(args.seed))
    if ids.numel() == 0 or ids.min() < 0 or ids.max() >= vocab:
        raise UsageError(f"the prompt needs 1 or more token ids in [0, {vocab})")
    return ids


def setup(args: argparse.Namespace):
    device = parse_device(args.device)
    try:
        dtype = DType.parse(args.dtype)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if dtype not in FLOAT_DTYPES:
        raise UsageError(f"--dtype must be f32, f16 or bf16, got '{args.dtype}'")
    if args.steps < 0:
        raise UsageError("--steps must be 0 or more")
    if args.baseline is not None:
        try:
            load_baseline(args.baseline, "qwen3-integration")
        except (OSError, ValueError, DocumentKindError) as error:
            raise UsageError(f"--baseline: {error}") from None
    backend = select_backend(args.backend, device)
    directory = checkpoint_directory(args)
    streamed = args.stream or reference_too_large(directory)
    models = load_models(directory, dtype, device, streamed=streamed)
    backend, taken = with_fallback(backend, models, args.fallback)
    return backend, models, prompt_ids(args, models), taken


def reference_too_large(directory: Path) -> bool:
    """Whether the fully loaded float64 reference (8 bytes a parameter, on the host) would take more than
    half the host's memory; said in one line when it would, since the run then streams."""
    try:
        config = read_config(directory)
    except CheckpointError:
        return False  # load_models reports the checkpoint's problem
    parameters = sum(math.prod(shape) for shape in expected_shapes(config).values())
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if 8 * parameters <= host / 2:
        return False
    print(f"note: the float64 reference of this checkpoint takes {8 * parameters / 2 ** 30:.0f} GiB, more than half "
          f"the host's {host / 2 ** 30:.0f} GiB: streaming it a decoder layer at a time (--stream)", file=sys.stderr)
    return True


def with_fallback(backend: Backend, models: Models, fallback: str | None) -> tuple[Backend, list[str]]:
    """The backend, with the operators the model needs and it lacks taken from `fallback` (said in one
    line), and those operators."""
    missing = [op for op in model_operators(models.weights) if backend.kernel(op) is None]
    if not missing:
        return backend, []
    if fallback is None:
        raise UsageError(f"backend '{backend.name}' has no kernel for {', '.join(missing)}, which the model needs; "
                         f"--fallback torch takes them from the torch control")
    substitute = select_backend(fallback, models.device)
    lacking = [op for op in missing if substitute.kernel(op) is None]
    if lacking:
        raise UsageError(f"neither backend '{backend.name}' nor the fallback '{fallback}' has a kernel for "
                         f"{', '.join(lacking)}")
    print(f"operators from the fallback backend '{fallback}': {', '.join(missing)} (the verdict speaks for the "
          f"backend's own kernels with these in place)", file=sys.stderr)
    return backend.with_fallback(substitute, missing), missing


ATTRIBUTION = ("never", "on-failure", "always")  # when integrate() reruns the model family by family


def integrate(models: Models, backend: Backend, ids: torch.Tensor, steps: int,
              attribution: str = "on-failure") -> IntegrationResult:
    """The prefill comparison, the generation, and the attribution (one rerun per operator family, the
    costliest part of a failing run) as `attribution` says: never, when the run fails, or always."""
    if attribution not in ATTRIBUTION:
        raise ValueError(f"attribution {attribution!r} is not one of {', '.join(ATTRIBUTION)}")
    prefill = compare_prefill(models, backend, ids)
    generation = generate(models, backend, ids, steps) if steps else None
    result = IntegrationResult(models.dtype, prefill, generation, None)
    if attribution == "never" or (attribution == "on-failure" and result.passed):
        return result
    decode = None if generation is None else generation.decode
    return replace(result, attribution=attribute(models, backend, ids, steps, (prefill, decode)))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()
    began = time.perf_counter()
    try:
        check_plots_option(args.plots)
        backend, models, ids, taken = setup(args)
    except (UsageError, CheckpointError, TransformersVersionError, OSError) as error:
        return usage_exit(error)
    context = RunContext(models.device, model_operators(models.weights), ids.numel() + args.steps + 1,
                         current_stream(models.device))
    try:
        with started(backend, context):
            result = integrate(models, backend, ids, args.steps, "always" if args.attribution else "on-failure")
    except BackendError as error:
        return usage_exit(error)
    except KernelOutOfMemoryError:
        raise  # the machine's limit, not the kernel's defect: exit 2 by operators/core/exits.py
    except (KernelError, KernelCallError, WeightsWrittenError) as error:  # the backend under test failed: a failed run
        print(f"error: a kernel of backend '{args.backend}' failed: {error}", file=sys.stderr)
        return EXIT_FAIL
    print(points_table(result.prefill.points, args.all_points))
    print()
    print("\n".join(summary_lines(result)))
    if result.attribution is not None:
        print()
        print(attribution_table(result.attribution))
    streamed = ", streamed a decoder layer at a time" if models.streamed else ""
    config = {"device": models.device.value, "backend": backend.name, "model_dir": str(models.checkpoint.directory),
              "synthetic": None if args.model_dir else (args.synthetic or "tiny"), "layers": args.layers,
              "architecture": models.config.architecture, "dtype": models.dtype.value, "prompt_ids": ids.tolist(),
              "steps": args.steps, "seed": args.seed,
              "reference": f"transformers float64 on {models.reference_device} (eager{streamed})",
              "fallback": {"backend": args.fallback, "operators": taken} if taken else None,
              "baseline": f"transformers {models.dtype.short} on {models.device.value} (eager{streamed})"}
    document = build_document(result, config, collect_environment(models.device.torch_type, backend))
    document["seconds"] = round(time.perf_counter() - began, 2)
    document["peak_memory"] = peak_memory(models.device)
    pictures = integration_pictures(document, args.plots) if args.plots else []
    outputs = ((args.output, lambda: json_text(document)), (args.junit_xml, lambda: integration_junit_xml(document)),
               (args.markdown, lambda: integration_markdown(document, result, args.all_points)
                + "\n".join(picture_lines(pictures, args.markdown))))
    for path, text in outputs:
        try:
            if path is not None:
                write_text_atomically(path, text())
        except OSError as error:
            print(f"error: cannot write the report to {path}: {error}", file=sys.stderr)
            return EXIT_USAGE
    last_position = ids.numel() + max(args.steps - 1, 0) - 1
    if last_position < LONG_POSITIONS:
        print(f"\nnote: positions 0-{last_position} only: errors that grow with the position (a short cos/sin "
              f"table, the float32 rope angle, softmax over thousands of keys) show past {LONG_POSITIONS}; "
              f"--prompt-tokens {LONG_POSITIONS + 64} reaches them", file=sys.stderr)
    regressed = False
    if args.baseline is not None:
        drift = compare_integration(load_baseline(args.baseline, "qwen3-integration"), json.loads(json_text(document)),
                                    args.drift_margin)
        regressed = drift.regressed(args.fail_on)
        print("\n" + "\n".join(drift.lines()))
        print(f"drift against {args.baseline}: {'REGRESSION' if regressed else 'none beyond the margin'}",
              file=sys.stderr)
    where = result.first_failure()
    verdict = "PASS" if result.passed else f"FAIL: first over budget at {where}"
    written = [str(path) for path, _ in outputs if path is not None] + [str(p) for p in pictures]
    peak = document["peak_memory"]
    memory = f"peak host {peak['host_gib']} GiB" + ("" if peak["device_gib"] is None else f", GPU {peak['device_gib']} GiB")
    print(f"\nverdict: {verdict} ({document['seconds']}s, {memory}{', wrote ' + ', '.join(written) if written else ''})",
          file=sys.stderr)
    return EXIT_PASS if result.passed and not regressed else EXIT_FAIL


def peak_memory(device: Device) -> dict[str, float | None]:
    """The run's high-water marks in GiB: the process's resident host memory, and what PyTorch allocated on
    the GPU (None on the CPU)."""
    host_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated() / 2 ** 30 if device.torch_type == "cuda" else None
    return {"host_gib": round(host_kib / 2 ** 20, 2), "device_gib": None if gpu is None else round(gpu, 2)}


def cli() -> int:
    """The command, in a watched child process (operators/core/supervision.py)."""
    return watched_command("operators.integrate", main)


if __name__ == "__main__":
    sys.exit(cli())
