"""The papers' published tables (``scaling/reference/*.csv``), to set our measurements beside them.

Each CSV names its source on its first ``#`` lines; :func:`load_reference` keeps that text in
``table.attrs["source"]`` so a plot or printed table can cite it.
"""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

PACKAGE, FOLDER = "scaling", "reference"


def reference_names() -> list[str]:
    """The bundled tables, by file stem (e.g. ``scale_efficiently_table4``)."""
    folder = resources.files(PACKAGE).joinpath(FOLDER)
    return sorted(p.name.removesuffix(".csv") for p in folder.iterdir() if p.name.endswith(".csv"))


def load_reference(name: str) -> pd.DataFrame:
    """One bundled table; ``attrs["source"]`` holds its leading comment (paper, table number, caveats)."""
    if name not in reference_names():
        raise KeyError(f"no reference table {name!r}; bundled: {reference_names()}")
    text = resources.files(PACKAGE).joinpath(FOLDER, f"{name}.csv").read_text()
    lines = text.splitlines()
    comments = [line.lstrip("# ").rstrip() for line in lines if line.startswith("#")]
    table = pd.read_csv(io.StringIO("\n".join(line for line in lines if not line.startswith("#"))))
    table.attrs["source"] = " ".join(comments)
    return table


def scale_efficiently_table4() -> pd.DataFrame:
    """*Scale Efficiently* Table 4 with derived axes: ``loss`` (= −neg. log-perplexity), ``seconds_per_step``
    (= 1 / steps per second, the paper's speed axis as a cost) and ``flops`` (its TFLOPs column × 1e12: Mesh
    TensorFlow's own count, not reproduced by :mod:`scaling.accounting`, so compare within the table only)."""
    table = load_reference("scale_efficiently_table4")
    return table.assign(
        loss=-table["neg_log_ppl_c4"], seconds_per_step=1.0 / table["steps_per_second"], flops=table["tflops"] * 1e12
    )


def sources() -> pd.DataFrame:
    """Every bundled table with its source line, for the notebook's first cell."""
    return pd.DataFrame([{"table": n, "source": load_reference(n).attrs["source"]} for n in reference_names()])
