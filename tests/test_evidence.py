"""Verdicts over seeds: closed-form means, standard errors, paired and Welch differences, t intervals."""

import math

import pandas as pd
import pytest
from scipy import stats

from scaling.analysis import evidence


def test_estimate_is_the_mean_and_standard_error_of_the_mean():
    e = evidence.estimate([1.0, 2.0, 3.0, float("nan")])
    assert (e.mean, e.n) == (2.0, 3) and e.se == pytest.approx(1.0 / math.sqrt(3))
    one = evidence.estimate([4.0])
    assert one.mean == 4.0 and math.isnan(one.se) and str(one) == "4.000"


def test_paired_difference_uses_per_seed_differences_and_a_t_interval():
    table = pd.DataFrame(
        {"run": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2, 2, 1, 0], "loss": [1.0, 2.0, 3.0, 1.5, 0.5, 0.0]}
    )
    d = evidence.difference(table, "a", "b", "loss")  # per seed: 1.0, 1.5, 1.5
    se = pd.Series([1.0, 1.5, 1.5]).std() / math.sqrt(3)
    half = stats.t.ppf(0.975, 2) * se
    assert d.paired and d.mean == pytest.approx(4 / 3) and d.se == pytest.approx(se)
    assert (d.low, d.high) == (pytest.approx(4 / 3 - half), pytest.approx(4 / 3 + half))
    assert evidence.verdict(d, 1) == "reproduced" and evidence.verdict(d, -1) == "contradicted"


def test_welch_difference_when_seeds_differ_and_inconclusive_when_the_interval_spans_zero():
    table = pd.DataFrame({"run": ["a", "a", "b", "b", "b"], "seed": [0, 1, 2, 3, 4], "x": [1, 3, 1, 2, 3]})
    d = evidence.difference(table, "a", "b", "x")
    ea, eb = evidence.estimate([1, 3]), evidence.estimate([1, 2, 3])
    assert not d.paired and d.mean == pytest.approx(0.0) and d.se == pytest.approx(math.hypot(ea.se, eb.se))
    assert evidence.verdict(d, 1) == "inconclusive"


def test_one_seed_is_never_conclusive_and_a_baseline_is_a_one_sample_test():
    table = pd.DataFrame({"run": ["a", "b"], "seed": [0, 0], "x": [10.0, 0.0]})
    d = evidence.difference(table, "a", "b", "x")
    assert d.mean == 10.0 and math.isnan(d.se) and evidence.verdict(d, 1) == "inconclusive"
    assert "one seed: no error" in str(d)
    above = evidence.against([0.70, 0.71, 0.72], 0.60)
    assert evidence.verdict(above, 1) == "reproduced" and above.mean == pytest.approx(0.11)
    with pytest.raises(ValueError, match="claimed_sign"):
        evidence.verdict(above, 0)
