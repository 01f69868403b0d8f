"""--plots: the pictures are drawn where the error is, for the failing cases only, within their
limits, linked from the markdown; without matplotlib the option is a usage error, not a crash."""

import sys

import pytest
import torch

from operators.integrate import main as integrate_main
from operators.run import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, main
from reports.error_map import LARGEST_MAP, fold, shrink
from reports.pictures import CASE_PICTURES_PER_GROUP

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def matplotlib_installed():
    pytest.importorskip("matplotlib")


def test_a_folded_map_keeps_the_largest_error_where_it_is():
    """[positions, heads, head_dim] -> heads x positions, the largest over head_dim kept."""
    error = torch.zeros(7, 3, 16, dtype=torch.float64)
    error[5, 2, 11] = 9.0
    folded, rows, columns = fold(error)
    assert folded.shape == (3, 7) and folded[2, 5] == 9.0 and folded.sum() == 9.0
    assert rows.startswith("dim 1 (size 3") and columns == "dim 0 (size 7)"
    wide = torch.zeros(1000, 5000, dtype=torch.float64)
    wide[999, 4999] = 3.0
    shrunk = shrink(wide)
    assert tuple(shrunk.shape) == LARGEST_MAP and shrunk[-1, -1] == 3.0 and shrunk.sum() == 3.0


def test_a_failing_run_draws_its_failing_cases_and_links_them(harness, matplotlib_installed, tmp_path, capsys):
    pictures, markdown = tmp_path / "pictures", tmp_path / "summary" / "run.md"
    code = main(["--device", harness.device.value, "--backend", "suites.wrong_kernels.attention_mask_off_by_one",
                 "--operators", "attention_prefill,swiglu", "--dtypes", "f16", "--examples", "5", "--no-contract",
                 "--plots", str(pictures), "--markdown", str(markdown)])
    assert code == EXIT_FAIL, capsys.readouterr().err
    drawn = sorted(p.name for p in pictures.glob("*.png"))
    cases = [name for name in drawn if name.startswith("case-")]
    assert "budget-use.png" in drawn
    assert cases and all(n.startswith("case-attention_prefill-f16-") for n in cases)
    assert len(cases) <= CASE_PICTURES_PER_GROUP
    assert all((pictures / name).read_bytes().startswith(PNG_SIGNATURE) for name in drawn)
    text = markdown.read_text()
    for name in drawn:
        assert f"](../pictures/{name})" in text
        assert (markdown.parent / "../pictures" / name).exists()


def test_a_passing_run_draws_no_case(harness, matplotlib_installed, tmp_path, capsys):
    pictures = tmp_path / "pictures"
    assert main(["--device", harness.device.value, "--operators", "swiglu", "--dtypes", "bf16", "--examples", "3",
                 "--no-contract", "--plots", str(pictures)]) == EXIT_PASS, capsys.readouterr().err
    assert sorted(p.name for p in pictures.iterdir()) == ["budget-use.png"]


def test_the_integration_draws_its_points(harness, matplotlib_installed, tmp_path, capsys):
    picture = tmp_path / "pictures" / "integration.png"
    code = integrate_main(["--device", harness.device.value, "--synthetic", "tiny", "--dtype", "bf16", "--steps", "0",
                           "--backend", "suites.wrong_kernels.rms_norm_weight_not_applied",
                           "--plots", str(picture.parent)])
    assert code == EXIT_FAIL, capsys.readouterr().err
    assert picture.read_bytes().startswith(PNG_SIGNATURE)


def test_plots_without_matplotlib_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    for command in (main, integrate_main):
        assert command(["--plots", str(tmp_path / "p")]) == EXIT_USAGE
        assert "--plots needs matplotlib" in capsys.readouterr().err


def test_plots_into_a_file_is_a_usage_error(matplotlib_installed, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    assert main(["--plots", str(a_file)]) == EXIT_USAGE
    assert "is not a folder" in capsys.readouterr().err
