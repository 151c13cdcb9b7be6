"""The notebooks run end to end on the bundled results (so they never rot), without jax or TensorFlow, the way a
fresh Colab runtime runs them, and are committed clean (their pictures are the shipped `notebooks/figures/`)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = NOTEBOOKS / "frontier_analysis.ipynb"
STUDIES = NOTEBOOKS / "studies.ipynb"
RESULTS = NOTEBOOKS / "results" / "demo_nl_sweep"
# What the analysis must never load: the trainer's stack.
FORBIDDEN = {"jax", "jaxlib", "flax", "optax", "orbax", "tensorflow", "tensorflow_datasets", "seqio"}
# Appended to a notebook under test (never committed): which of FORBIDDEN the kernel has loaded, and can import.
PROBE = f"""import importlib.util, json, sys
print("PROBE", json.dumps({{
    "loaded": sorted({{m.split(".")[0] for m in sys.modules}} & set({sorted(FORBIDDEN)!r})),
    "installed": sorted(m for m in {sorted(FORBIDDEN)!r} if importlib.util.find_spec(m) is not None),
}}))"""


def setup_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


def probe(nb) -> dict:
    text = "".join(o.text for o in nb.cells[-1].outputs if o.output_type == "stream")
    return json.loads(text.split("PROBE", 1)[1])


def images(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb


@pytest.mark.parametrize("path", [NOTEBOOK, STUDIES], ids=lambda p: p.name)
def test_committed_notebook_is_clean_and_starts_with_the_one_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    setup = setup_cell(path)
    assert setup == setup_cell(NOTEBOOK), "both notebooks start with the same setup cell"
    # What a restart would undo or need: no chdir, no install of the package itself into the running kernel.
    statements = "\n".join(line for line in setup.splitlines() if not line.lstrip().startswith("#"))
    assert "chdir" not in statements and '"-e"' not in statements and "install -e" not in statements
    assert '"requirements" / "analysis.txt"' in setup and "sys.path.insert(0, str(REPO))" in setup
    assert 'REPO / "notebooks" / "results"' in "".join(c.source for c in code)


def test_shipped_sweep_is_what_the_notebook_says_and_has_no_checkpoints():
    text = NOTEBOOK.read_text()
    assert "--config=configs/demo.py --base=tiny --op=nl --values=1,2,3 --config.budget=seconds:20" in text
    runs = sorted(p.name for p in RESULTS.iterdir() if p.is_dir())
    assert runs == ["tiny-nl1", "tiny-nl2", "tiny-nl3"]
    for run in runs:
        assert sorted(p.name for p in (RESULTS / run).iterdir()) == ["config.json", "metrics.jsonl", "summary.json"]
        summary = json.loads((RESULTS / run / "summary.json").read_text())
        assert summary["budget"]["unit"] == "seconds" and summary["budget"]["amount"] == 20
        assert summary["final_metrics"]["completed"] and summary["config"]["log_every_steps"] == 5


def test_notebook_executes_offline_without_jax_or_tensorflow():
    nb = execute(NOTEBOOK)
    assert not outputs(nb, "error")
    assert len(images(nb)) >= 6
    assert probe(nb)["loaded"] == []  # installed here (the test extra), but the notebook never imports them


def test_studies_notebook_executes_offline_without_jax_or_tensorflow():
    nb = execute(STUDIES)
    assert not outputs(nb, "error")
    assert len(images(nb)) >= 6  # curves, compression, frontiers, knob gains, variants, schedules
    assert probe(nb)["loaded"] == []


@pytest.mark.slow
def test_studies_notebook_reads_the_tables_a_study_writes_now(tmp_path):
    """The shipped tables are the old single-seed layout; the notebook also reads the new one (seeds, per-metric
    constant answers, the control, trivial baselines): in a checkout whose results are rewritten that way. (~40 s)"""
    from test_figures import new_layout

    for folder in ("scaling", "requirements"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "figures").symlink_to(NOTEBOOKS / "figures")
    shutil.copytree(NOTEBOOKS / "results", tmp_path / "notebooks" / "results")
    new_layout(tmp_path / "notebooks" / "results")
    shutil.copy(STUDIES, tmp_path / "notebooks")
    nb = execute(tmp_path / "notebooks" / STUDIES.name)
    assert not outputs(nb, "error")
    assert len(images(nb)) >= 7  # and the runs against the trivial baselines of their objectives
    shown = [o.get("data", {}) for kind in ("display_data", "execute_result") for o in outputs(nb, kind)]
    markdown = "".join(d.get("text/markdown", "") for d in shown)
    assert "no trivial baselines" not in markdown and "**Verdicts**" in markdown
    tables = "".join(d.get("text/plain", "") for d in shown)
    assert "no_pretraining" in tables and "constant answer" in tables and "eval_loss_se" in tables


def test_setup_cell_without_a_checkout_or_url_says_what_to_set(tmp_path, monkeypatch):
    """A fresh runtime with no REPO_URL: one line naming what to set and where, not a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCALING_REPO_URL", raising=False)
    with pytest.raises(Exception, match="set REPO_URL at the top of this cell") as error:
        exec(compile(setup_cell(NOTEBOOK), "setup cell", "exec"), {})
    assert error.type.__name__ == "SetupError"
    rendered = error.value._render_traceback_()  # what IPython (and Colab) print instead of a traceback
    assert len(rendered) == 1 and "SCALING_REPO_URL" in rendered[0]
    assert list(tmp_path.iterdir()) == []  # nothing cloned, nothing installed


def _pins(names: set[str]) -> list[str]:
    """The test extra's pins for ``names``, read from setup.py."""
    pins = re.findall(r'"([\w-]+)==([\w.]+)"', (ROOT / "setup.py").read_text())
    found = [f"{name}=={version}" for name, version in pins if name in names]
    assert len(found) == len(names), f"setup.py pins {found}, expected {sorted(names)}"
    return found


# Runs inside the fresh virtual environment: each notebook in its own new kernel, from a folder with no checkout.
RUNNER = """
import sys, nbclient, nbformat
probe, cwd, out = sys.argv[1:4]
for path in sys.argv[4:]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    nbformat.write(nb, f"{out}/{path.rsplit('/', 1)[-1]}")
"""


@pytest.mark.slow
def test_notebooks_run_the_colab_way_in_a_fresh_environment(tmp_path):
    """As in a fresh Colab runtime: a Python with nothing but a notebook kernel, a working folder outside any
    checkout, and REPO_URL set. The setup cell clones the repository, installs requirements/analysis.txt into the
    running kernel and puts the clone on sys.path; every cell then runs with no restart, and neither jax nor
    TensorFlow is installed or imported. (~2 minutes, mostly pip; PyPI must be reachable.)"""
    # The repository as a git remote: this working tree's analysis package, requirements and notebooks.
    origin = tmp_path / "origin"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for folder in ("scaling", "requirements", "notebooks"):
        shutil.copytree(ROOT / folder, origin / folder, ignore=ignore)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *args], cwd=origin, check=True)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv = tmp_path / "venv"
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONNOUSERSITE": "1",
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),  # caches nothing outside tmp
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter" / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter" / "runtime"),
        "SCALING_REPO_URL": origin.as_uri(),
    }
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)  # no system site-packages
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", *_pins({"nbclient", "nbformat", "ipykernel"})], check=True, env=env
    )
    content, out = tmp_path / "content", tmp_path / "out"
    content.mkdir()
    out.mkdir()
    run = subprocess.run(
        [python, "-c", RUNNER, PROBE, str(content), str(out), str(NOTEBOOK), str(STUDIES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    clone = content / "scaling"
    assert (clone / "scaling" / "analysis").is_dir() and (clone / "notebooks" / "figures").is_dir()
    requirements = [
        line for line in (ROOT / "requirements" / "analysis.txt").read_text().splitlines() if line[:1].isalpha()
    ]
    for name, installed in ((NOTEBOOK.name, ", ".join(requirements)), (STUDIES.name, "nothing")):
        nb = nbformat.read(out / name, as_version=4)
        assert not outputs(nb, "error"), name
        first = next(c for c in nb.cells if c.cell_type == "code")
        setup = "".join(o.text for o in first.outputs if o.output_type == "stream")
        # The first notebook's kernel installed the analysis requirements (and only them), the second found them.
        assert f"repository: {clone}; installed: {installed};" in setup, setup
        assert len(images(nb)) >= 6, name
        assert probe(nb) == {"loaded": [], "installed": []}, name
