"""Downstream metrics against closed forms, hand-worked confusion matrices, scipy and a direct MCC definition."""

import types

import numpy as np
import pytest
import scipy.stats

from scaling.downstream import datasets, scores


def test_confusion_hand_worked_with_an_invalid_prediction():
    labels = [0, 1, 2, 2, 1, 1]
    preds = [0, 1, 1, 2, -1, 0]
    expected = np.array(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 1],  # the -1 lands in the last ("invalid") column
            [0, 1, 1, 0],
        ]
    )
    np.testing.assert_array_equal(scores.confusion(preds, labels, 3), expected)
    # An id >= num_classes is invalid too; without num_classes K is inferred from the ids seen.
    np.testing.assert_array_equal(scores.confusion([0, 5], [0, 1], 2), [[1, 0, 0], [0, 0, 1]])
    assert scores.confusion([0, 1], [2, 0]).shape == (3, 4)


def test_accuracy_counts_invalid_predictions_as_wrong():
    assert scores.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert scores.accuracy([-1, -1, 1], [0, 1, 1], 2) == pytest.approx(1 / 3)
    assert scores.accuracy([2, 0, 1], [2, 0, 1], 3) == 1.0


def test_binary_f1_is_the_f1_of_class_1():
    # TP = 2, FP = 1, FN = 1: precision = recall = 2/3.
    assert scores.f1([1, 0, 1, 0, 1], [1, 1, 0, 0, 1]) == pytest.approx(2 / 3)
    # Precision 1/2 (TP 1, FP 1), recall 1/3 (FN 2, one of them an invalid prediction): F1 = 2PR / (P + R) = 0.4.
    assert scores.f1([1, 1, 0, -1, 0], [1, 0, 1, 1, 0], 2) == pytest.approx(0.4)
    assert scores.f1([0, 0, 0], [0, 0, 0], 2) == 0.0  # no positive anywhere: undefined, reported as 0
    assert scores.f1([0, 0, 0], [1, 1, 0], 2) == 0.0


def _macro_f1_by_hand(preds: np.ndarray, labels: np.ndarray, k: int) -> float:
    values = []
    for c in range(k):
        tp = np.sum((preds == c) & (labels == c))
        predicted, actual = np.sum(preds == c), np.sum(labels == c)
        if predicted == 0 and actual == 0:
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        values.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(values))


def test_multiclass_f1_is_macro_over_present_classes():
    # Class 0: P 1/2 R 1 -> 2/3; class 1: P 1 R 1/2 -> 2/3; class 2: P 1 R 1 -> 1; class 3 absent: skipped.
    assert scores.f1([0, 0, 1, 2], [0, 1, 1, 2], 4) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 4, 50)
        preds = np.where(rng.random(50) < 0.1, -1, np.where(rng.random(50) < 0.6, labels, rng.integers(0, 4, 50)))
        assert scores.f1(preds, labels, 4) == pytest.approx(_macro_f1_by_hand(preds, labels, 4))


def _binary_mcc(preds: np.ndarray, labels: np.ndarray) -> float:
    tp = np.sum((preds == 1) & (labels == 1))
    tn = np.sum((preds == 0) & (labels == 0))
    fp = np.sum((preds == 1) & (labels == 0))
    fn = np.sum((preds == 0) & (labels == 1))
    return float((tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))))


def _gorodkin_mcc(preds: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The definition: the correlation of the one-hot label and prediction matrices (invalid = its own column)."""
    x = np.eye(k + 1)[labels]
    y = np.eye(k + 1)[np.where(preds < 0, k, preds)]
    centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
    cov_xy, cov_xx, cov_yy = np.sum(centred_x * centred_y), np.sum(centred_x**2), np.sum(centred_y**2)
    return float(cov_xy / np.sqrt(cov_xx * cov_yy))


def test_mcc_binary_closed_form_and_multiclass_definition():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.integers(0, 2, 40)
        preds = np.where(rng.random(40) < 0.7, labels, 1 - labels)
        assert scores.mcc(preds, labels, 2) == pytest.approx(_binary_mcc(preds, labels))
    for k in (3, 6):
        for _ in range(20):
            labels = rng.integers(0, k, 60)
            preds = np.where(rng.random(60) < 0.5, labels, rng.integers(-1, k, 60))
            assert scores.mcc(preds, labels, k) == pytest.approx(_gorodkin_mcc(preds, labels, k))
    # Hand-worked: TP 2, TN 1, FP 1, FN 0 -> (2 - 0) / sqrt(3 * 2 * 2 * 1).
    assert scores.mcc([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / np.sqrt(12))


def test_mcc_edge_cases():
    labels = np.array([0, 1, 1, 0, 2])
    assert scores.mcc(labels, labels, 3) == pytest.approx(1.0)
    assert scores.mcc(1 - labels[:4], labels[:4], 2) == pytest.approx(-1.0)
    assert scores.mcc(np.zeros(5, int), labels, 3) == 0.0  # constant predictions: undefined -> 0
    assert scores.mcc([0, 1, 0], [1, 1, 1], 2) == 0.0  # constant labels
    assert scores.mcc([-1, -1, -1], [0, 1, 1], 2) == 0.0


def test_correlations_match_scipy_and_are_zero_when_undefined():
    rng = np.random.default_rng(2)
    labels = rng.normal(size=100)
    preds = labels + rng.normal(size=100)
    assert scores.pearson(preds, labels) == pytest.approx(scipy.stats.pearsonr(preds, labels).statistic)
    assert scores.spearman(preds, labels) == pytest.approx(scipy.stats.spearmanr(preds, labels).statistic)
    assert scores.pearson(labels, labels) == pytest.approx(1.0)
    assert scores.spearman(-(labels**3), labels) == pytest.approx(-1.0)
    for metric in (scores.pearson, scores.spearman):
        assert metric(np.full(100, 2.5), labels) == 0.0
        assert metric(preds, np.ones(100)) == 0.0
        assert metric([1.0], [2.0]) == 0.0
        with pytest.raises(ValueError, match="finite"):
            metric([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize("metric", [scores.accuracy, scores.f1, scores.mcc, scores.pearson, scores.spearman])
def test_invalid_shapes(metric):
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        metric([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        metric([], [])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        metric([[0, 1]], [[0, 1]])


def test_invalid_classification_inputs():
    with pytest.raises(ValueError, match="integer class ids"):
        scores.accuracy([0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="labels must be class ids"):
        scores.accuracy([0, 1], [0, -1], 2)  # a hidden (-1) label
    with pytest.raises(ValueError, match="labels must be class ids"):
        scores.f1([0, 1], [0, 3], 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        scores.mcc([0, 0], [0, 0], 1)


def test_evaluate_main_scores():
    mrpc = scores.evaluate(datasets.get_task("glue_mrpc"), [1, 0, 1, 0, 1], [1, 1, 0, 0, 1])
    assert set(mrpc) == {"accuracy", "f1", "score"}
    assert mrpc["accuracy"] == pytest.approx(0.6) and mrpc["f1"] == pytest.approx(2 / 3)
    assert mrpc["score"] == pytest.approx((0.6 + 2 / 3) / 2)  # GLUE averages MRPC's two metrics

    spam = scores.evaluate(datasets.get_task("sms_spam"), [0, 0, 0, 0, 1], [0, 0, 0, 1, 1])
    assert set(spam) == {"f1", "mcc", "accuracy", "score"} and spam["score"] == spam["mcc"]

    trec = scores.evaluate(datasets.get_task("trec"), [0, 1, 2, 3, 4, 5, -1], [0, 1, 2, 3, 4, 5, 5])
    assert trec["score"] == trec["accuracy"] == pytest.approx(6 / 7)
    assert trec["f1"] == pytest.approx((5 + 2 / 3) / 6)  # macro over the 6 classes, NUM has recall 1/2

    stsb = datasets.get_task("glue_stsb")
    values = np.array([0.0, 1.2, 3.4, 5.0, 2.2])
    result = scores.evaluate(stsb, values + [0.1, -0.3, 0.2, 0.0, 1.0], values)
    assert result["score"] == pytest.approx((result["pearson"] + result["spearman"]) / 2)

    cola = scores.evaluate(datasets.get_task("glue_cola"), [1, 1, 1], [0, 1, 1])
    assert cola == {"mcc": 0.0, "score": 0.0}


def test_evaluate_rejects_metrics_of_the_other_kind():
    task = types.SimpleNamespace(
        name="odd", kind="regression", metrics=("accuracy",), main_metrics=("accuracy",), num_labels=1
    )
    with pytest.raises(ValueError, match="asks for metrics"):
        scores.evaluate(task, [0.5, 1.0], [0.5, 1.0])


def test_aggregate_is_the_unweighted_mean_over_tasks():
    assert scores.aggregate({"glue_cola": 0.5, "glue_sst2": 0.9, "glue_stsb": 0.85}) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="No task scores"):
        scores.aggregate({})
    with pytest.raises(ValueError, match="glue_rte"):
        scores.aggregate({"glue_sst2": 0.9, "glue_rte": float("nan")})


def test_constant_baseline_is_the_best_single_answer():
    sentiment = datasets.get_task("rotten_tomatoes")  # score = mean(accuracy, F1 of the positive class)
    labels = np.array([1, 1, 1, 0])
    # all 1: accuracy 0.75, F1 = 2 * 0.75 / 1.75 = 0.857; all 0: accuracy 0.25, F1 0.
    assert scores.constant_baseline(sentiment, labels)["score"] == pytest.approx((0.75 + 6 / 7) / 2)
    ratings = datasets.get_task("movie_ratings")  # correlations of a constant are 0 by definition here
    assert scores.constant_baseline(ratings, np.array([1.0, 2.0, 3.0]))["score"] == 0.0
