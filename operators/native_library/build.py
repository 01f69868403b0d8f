"""Compile a native kernel library from source, cached by the hash of its sources and flags.

Prebuild with `python -m operators.native_library.build` (the CPU library; `--device nvidia` for
CUDA, which needs only nvcc: it builds without a GPU)."""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from operators.core.exits import EXIT_PASS, EXIT_USAGE
from operators.core.kernel_errors import NativeBuildError

def kernel_sources() -> Path:
    """The C/CUDA sources: `kernels/` of a checkout (or an editable install), the copy an installed
    wheel carries beside this file otherwise."""
    here = Path(__file__).resolve().parent
    installed = here / "sources"
    return installed if (installed / "include").is_dir() else here.parents[1] / "kernels"


KERNELS_DIR = kernel_sources()
INCLUDE_DIR = KERNELS_DIR / "include"
HOST_DIR = KERNELS_DIR / "host"  # the host-side C every library compiles in: statuses, checks, contracts


@dataclass(frozen=True)
class BuildRecipe:
    """How one device's library is compiled: sources, compiler and flags."""

    name: str
    source_dir: Path
    source_suffixes: tuple[str, ...]
    compiler: str
    flags: tuple[str, ...]  # used to compile each source and to link
    link_flags: tuple[str, ...]
    include_dirs: tuple[Path, ...] = (INCLUDE_DIR, HOST_DIR)
    extra_inputs: tuple[Path, ...] = ()  # files the sources include from elsewhere
    libraries: tuple[str, ...] = ("-lm",)
    host_flags: tuple[str, ...] = ()  # put before each source of HOST_DIR (the language nvcc compiles it as)

    def sources(self) -> list[Path]:
        found = [p for p in sorted(self.source_dir.iterdir()) if p.suffix in self.source_suffixes]
        if not found:
            raise NativeBuildError(f"no {self.name} kernel sources in {self.source_dir}")
        return host_sources() + found

    def inputs(self) -> list[Path]:
        headers = [p for d in (self.source_dir, *self.include_dirs) for suffix in ("*.h", "*.cuh")
                   for p in sorted(d.glob(suffix))]
        return self.sources() + headers + list(self.extra_inputs)

    def build_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(" ".join((self.compiler, *self.flags, *self.link_flags, *self.libraries)).encode())
        for path in self.inputs():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def host_sources() -> list[Path]:
    return sorted(HOST_DIR.glob("*.c"))


def cpu_recipe() -> BuildRecipe:
    compiler = os.environ.get("CC", "cc")
    return BuildRecipe(
        name="cpu",
        source_dir=KERNELS_DIR / "cpu",
        source_suffixes=(".c",),
        compiler=compiler,
        flags=("-O2", "-std=c11", "-fopenmp", "-fno-trapping-math", "-fPIC", "-Wall", "-Wextra", "-Werror"),
        link_flags=("-shared", "-fopenmp"),
    )


def nvcc_path() -> str:
    return os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"


def nvidia_recipe() -> BuildRecipe:
    """CUDA kernels for sm_80 and sm_90 (QWEN3_CUDA_ARCHS="80;90" overrides), cuBLAS loaded at run time."""
    archs = [a.strip() for a in os.environ.get("QWEN3_CUDA_ARCHS", "80;90").split(";") if a.strip()]
    gencode = tuple(flag for arch in archs for flag in ("-gencode", f"arch=compute_{arch},code=sm_{arch}"))
    return BuildRecipe(
        name="nvidia",
        source_dir=KERNELS_DIR / "nvidia",
        source_suffixes=(".cu",),
        compiler=nvcc_path(),
        flags=("-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-lineinfo", *gencode),
        link_flags=("-shared", *gencode),
        libraries=("-lm", "-ldl"),
        host_flags=("-x", "cu"),
    )


RECIPES = {"cpu": cpu_recipe, "nvidia": nvidia_recipe}


def cache_dir() -> Path:
    root = os.environ.get("QWEN3_HARNESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "qwen3-kernel-harness"
    )
    return Path(root)


def library_path(recipe: BuildRecipe) -> Path:
    return cache_dir() / f"libq3_{recipe.name}-{recipe.build_hash()}.so"


def run_compiler(recipe: BuildRecipe, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise NativeBuildError(
            f"building the {recipe.name} kernels failed ({' '.join(command)}):\n{result.stderr.strip()}"
        )


def compile_sources(recipe: BuildRecipe, scratch: Path) -> list[Path]:
    """One object per source, compiled in parallel (one job per core)."""
    includes = [f"-I{d}" for d in recipe.include_dirs]
    jobs = {source: scratch / f"{source.parent.name}_{source.stem}.o" for source in recipe.sources()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(run_compiler, recipe, [recipe.compiler, *recipe.flags, *includes, "-c",
                                                      *(recipe.host_flags if source.parent == HOST_DIR else ()),
                                                      str(source), "-o", str(obj)])
                   for source, obj in jobs.items()]
        for future in futures:
            future.result()
    return list(jobs.values())


def build(recipe: BuildRecipe, force: bool = False) -> Path:
    """Return the path of the compiled library, compiling it first if the cache lacks it."""
    target = library_path(recipe)
    if target.exists() and not force:
        return target
    if shutil.which(recipe.compiler) is None:
        raise NativeBuildError(f"cannot build the {recipe.name} kernels: compiler '{recipe.compiler}' not found")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            objects = compile_sources(recipe, Path(scratch))
            partial = Path(scratch) / target.name
            run_compiler(recipe, [recipe.compiler, *recipe.link_flags, *map(str, objects), "-o", str(partial),
                                  *recipe.libraries])
            os.replace(partial, target)
    except OSError as error:
        raise NativeBuildError(f"cannot build the {recipe.name} kernels into {target.parent} "
                               f"(set QWEN3_HARNESS_CACHE to a writable folder): {error}") from None
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a native kernel library into the cache.")
    parser.add_argument("--device", choices=sorted(RECIPES), default="cpu")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    try:
        path = build(RECIPES[args.device](), force=args.force)
    except NativeBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE  # an environment error: no compiler, or sources it cannot build
    print(path)
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
