"""Runs → tables → Pareto frontiers, scaling-law fits and plots.

Reads only what training wrote (``metrics.jsonl``, ``summary.json``, ``config.json`` in each workdir) and CSV
tables, and imports numpy, scipy, pandas and matplotlib — never jax, TensorFlow or the trainer — so the
notebook runs in a bare Colab or on a laptop with ``pip install -r requirements/analysis.txt`` and the repository
on ``sys.path`` (the notebooks' first cell does both).

    runs      load_runs (workdirs, sweep directories, results CSVs → one row per run), load_curves, load_compression
    frontier  pareto, frontier_table, efficiency, at_budget, same_budget
    fits      fit_power_law, fit_chinchilla, bootstrap, compute_optimal (closed form), compute_optimal_numeric
    plots     frontier, curves, compression, power_law_fit, scores
    figures   `python -m scaling.analysis.figures`: the README's and notebooks' PNGs from the shipped tables
    studies   each study's tables, findings and report.md
    tables    the papers' published tables: load_reference, scale_efficiently_table4, sources
"""

from scaling.analysis import fits, frontier, plots, runs, tables

__all__ = ["fits", "frontier", "plots", "runs", "tables"]
