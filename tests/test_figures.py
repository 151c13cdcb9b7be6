"""The shipped figures are what `python -m scaling.analysis.figures` draws from the shipped tables, and they are shown.

Images are compared as decoded pixels, not bytes: the pinned matplotlib renders them identically, and a small
tolerance absorbs anti-aliasing noise while a moved point or line (a changed table) does not pass.
"""

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from scaling.analysis import figures

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = NOTEBOOKS / "figures"
REGENERATE = "python -m scaling.analysis.figures"
MAX_KB = 150
# A pixel differs when a channel moves by more than 0.1 (of 1); at most this fraction may. One eval loss moved
# by 0.01 in the demo sweep changes 0.25% of its figure's pixels.
TOLERANCE = 2e-4


def differing_fraction(expected: np.ndarray, actual: np.ndarray) -> float:
    if expected.shape != actual.shape:
        return 1.0
    return float((np.abs(expected - actual).max(axis=-1) > 0.1).mean())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert figures.main(["--results", str(NOTEBOOKS / "results"), "--out", str(out)]) == 0
    return out


def test_the_shipped_figures_are_exactly_the_set_the_command_draws():
    assert sorted(p.name for p in FIGURES.iterdir()) == sorted(figures.FIGURES)
    for name in figures.FIGURES:
        size = (FIGURES / name).stat().st_size
        assert size < MAX_KB * 1024, f"{name} is {size / 1024:.0f} KB; keep each figure under {MAX_KB} KB"


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_shipped_figure_is_up_to_date(regenerated, name):
    expected, actual = matplotlib.image.imread(FIGURES / name), matplotlib.image.imread(regenerated / name)
    fraction = differing_fraction(expected, actual)
    assert fraction <= TOLERANCE, (
        f"notebooks/figures/{name} is out of date ({fraction:.2%} of its pixels differ, shape {expected.shape} "
        f"against {actual.shape}): rerun `{REGENERATE}` from the repository root and commit the PNGs"
    )


def test_drawing_is_deterministic(regenerated, tmp_path):
    """Same tables, same bytes (no timestamp or software stamp), whatever figure state the caller left."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.size": 20, "lines.linewidth": 5}):  # a caller's style does not leak in
        figures.write(NOTEBOOKS / "results", tmp_path)
    for name in figures.FIGURES:
        assert (tmp_path / name).read_bytes() == (regenerated / name).read_bytes(), name


def test_a_changed_table_is_caught(regenerated, tmp_path):
    """The comparison sees a one-point change: the shipped images cannot silently go stale."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(NOTEBOOKS / "results", results)
    table = results / "demo_nl_sweep" / "results.csv"
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")
    column = header.index("eval_loss")
    row[column] = str(float(row[column]) + 0.01)
    table.write_text("\n".join([*lines[:2], ",".join(row), *lines[3:]]) + "\n")
    figures.write(results, tmp_path / "out")
    name = "demo_sweep_frontier.png"
    fraction = differing_fraction(
        matplotlib.image.imread(regenerated / name), matplotlib.image.imread(tmp_path / "out" / name)
    )
    assert fraction > 10 * TOLERANCE


def test_readme_and_notebooks_show_every_figure():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Analysis, sweeps") : readme.index("## Studies")]
    assert REGENERATE in section
    shown = set(re.findall(r"!\[[^\]]*\]\(notebooks/figures/([\w.]+)\)", section))
    assert shown == set(figures.FIGURES), "the README's Analysis section shows each figure once"
    notebooks = "".join(p.read_text() for p in NOTEBOOKS.glob("*.ipynb"))
    linked = set(re.findall(r"!\[[^\]]*\]\(figures/([\w.]+)\)", notebooks))
    assert linked == set(figures.FIGURES), "each figure is linked from the notebook that draws it"


def test_command_convention(tmp_path, capsys):
    assert figures.main(["--help"]) == 0
    assert REGENERATE in capsys.readouterr().out
    assert figures.main(["--results", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --results") and "no such folder" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
