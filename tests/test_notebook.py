"""The Colab notebook runs end to end on the bundled results (so it never rots), and is committed clean."""

import json
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "frontier_analysis.ipynb"
RESULTS = NOTEBOOKS / "results" / "demo_nl_sweep"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


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


def test_notebook_executes_offline():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6


STUDIES = NOTEBOOKS / "studies.ipynb"


def test_studies_notebook_is_committed_clean_and_executes_offline():
    nb = nbformat.read(STUDIES, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # curves, compression, frontiers, knob gains, variants, schedules
