"""The installed distribution next to other packages: nothing it installs shadows a package named
`kernels` (Hugging Face's, which transformers probes), and the C sources it carries build."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_installed_wheel_and_a_package_named_kernels_both_import(tmp_path):
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("qwen3_kernel_harness-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    assert not (site / "kernels").exists()
    (site / "kernels").mkdir()
    (site / "kernels" / "__init__.py").write_text("def get_kernel(name):\n    return f'hub kernel {name}'\n")
    program = (
        "from kernels import get_kernel\n"
        "import operators.run\n"
        "from operators.native_library.build import KERNELS_DIR, build, cpu_recipe\n"
        f"assert KERNELS_DIR.is_relative_to({str(site)!r}), KERNELS_DIR\n"
        "print(get_kernel('rms_norm'), build(cpu_recipe()).name)\n")
    completed = subprocess.run([sys.executable, "-c", program], cwd=elsewhere, capture_output=True, text=True,
                               timeout=900, env={**os.environ, "PYTHONPATH": str(site),
                                                 "QWEN3_HARNESS_CACHE": str(tmp_path / "cache")})
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("hub kernel rms_norm libq3_cpu"), completed.stdout
