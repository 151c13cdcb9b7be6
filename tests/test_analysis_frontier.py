"""Pareto frontiers on hand-checked cases, and same-budget readings along training curves."""

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import frontier
from scaling.analysis.runs import RunError


def test_pareto_hand_checked_higher_is_better():
    # cost, quality: (1, 1) efficient; (2, 3) efficient; (2, 2) dominated by (2, 3) (same cost, worse);
    # (3, 3) dominated by (2, 3) (worse cost, same quality); (4, 5) efficient; (5, 4) dominated.
    costs = [1, 2, 2, 3, 4, 5]
    quality = [1, 3, 2, 3, 5, 4]
    assert frontier.pareto(costs, quality).tolist() == [True, True, False, False, True, False]


def test_pareto_lower_is_better_and_duplicates():
    costs = [10, 10, 20, 30, 5]
    loss = [2.0, 2.0, 1.5, 1.5, 3.0]
    # exact duplicates (10, 2.0) do not dominate each other; (30, 1.5) is dominated by (20, 1.5).
    assert frontier.pareto(costs, loss, higher_is_better=False).tolist() == [True, True, True, False, True]


def test_pareto_single_point_ties_and_nan():
    assert frontier.pareto([3.0], [1.0]).tolist() == [True]
    assert frontier.pareto([1, 1, 1], [2, 2, 1]).tolist() == [True, True, False]
    assert frontier.pareto([1, np.nan, 2], [1, 5, np.nan]).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="one length"):
        frontier.pareto([1, 2], [1])


def test_throughput_axis_is_invariant_to_the_decreasing_transform():
    rng = np.random.default_rng(0)
    throughput = rng.uniform(1, 100, 40)
    quality = rng.normal(size=40)
    by_inverse = frontier.pareto(1 / throughput, quality)
    assert by_inverse.tolist() == frontier.pareto(-throughput, quality).tolist()
    # The fastest model is always efficient; a model that is both slower and worse than another never is.
    assert by_inverse[np.argmax(throughput)] or np.any((throughput == throughput.max()) & by_inverse)
    brute = [
        not any(
            (throughput[j] >= throughput[i])
            and (quality[j] >= quality[i])
            and ((throughput[j] > throughput[i]) or (quality[j] > quality[i]))
            for j in range(40)
        )
        for i in range(40)
    ]
    assert by_inverse.tolist() == brute


def test_staircase_and_tables():
    table = pd.DataFrame(
        {"run": list("abcd"), "params": [1, 2, 3, 4], "flops": [4, 3, 2, 1], "loss": [3.0, 2.0, 2.5, 1.0]}
    )
    xs, ys = frontier.staircase(table["params"], table["loss"], higher_is_better=False)
    assert xs.tolist() == [1, 2, 4] and ys.tolist() == [3.0, 2.0, 1.0]
    ft = frontier.frontier_table(table, "params", "loss", higher_is_better=False)
    assert ft.loc[ft.efficient, "run"].tolist() == ["a", "b", "d"]
    eff = frontier.efficiency(table, {"params": "params", "FLOPs": "flops"}, "loss", higher_is_better=False)
    assert eff.efficient_params.tolist() == [True, True, False, True]
    assert eff.efficient_FLOPs.tolist() == [False, False, False, True]
    with pytest.raises(RunError, match="missing column"):
        frontier.frontier_table(table, "seconds", "loss")
    with pytest.raises(RunError, match="empty"):
        frontier.frontier_table(table.iloc[:0], "params", "loss")


def test_same_budget_interpolates_and_never_extrapolates():
    curves = pd.DataFrame(
        {"run": ["a"] * 3 + ["b"] * 2, "seconds": [0, 10, 20, 5, 10], "loss": [4.0, 3.0, 2.0, 3.0, 2.5]}
    )
    at = frontier.at_budget(curves, 15, x="seconds", y="loss").set_index("run")
    assert at.loc["a", "loss"] == pytest.approx(2.5) and at.loc["a", "reached"]
    assert np.isnan(at.loc["b", "loss"]) and not at.loc["b", "reached"]
    table = frontier.same_budget(curves, [5, 10], x="seconds", y="loss")
    assert table.loc["a", 5] == pytest.approx(3.5) and table.loc["b", 10] == pytest.approx(2.5)
