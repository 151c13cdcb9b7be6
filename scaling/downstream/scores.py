"""Downstream metrics (GLUE-style), in pure numpy/scipy so that analysis can use them without jax.

Scale: every metric is a fraction, as scikit-learn and the GLUE scripts return it: accuracy and F1 in [0, 1],
MCC and correlations in [-1, 1]. Callers that report GLUE numbers multiply by 100.

Classification predictions are class ids. An id outside [0, num_classes), such as -1 for a T5 output that
names no label, is an *invalid* prediction: it is wrong for accuracy, never a true positive for F1, and a
column of its own ("predicted: nothing") in MCC's confusion matrix. Labels must be valid ids.

Undefined values are 0.0, never nan, so that one degenerate task cannot turn a GLUE average into nan:
F1 without any positive, MCC or a correlation when either side is constant.

`evaluate` returns every metric of a task plus "score", the mean of the task's main metrics
(`task.main_metrics`): GLUE's rule for MRPC, QQP and STS-B, which average their two metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import scipy.stats

ArrayLike = Sequence[float] | np.ndarray


class ScoredTask(Protocol):
    """What `evaluate` needs of a task (`scaling.downstream.datasets.DownstreamTask` has it)."""

    name: str
    kind: str
    metrics: tuple[str, ...]
    main_metrics: tuple[str, ...]

    @property
    def num_labels(self) -> int: ...


def _vector(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array, got shape {array.shape}")
    return array


def _class_ids(values: ArrayLike, what: str) -> np.ndarray:
    array = _vector(values, what)
    if array.dtype.kind not in "iub":
        raise ValueError(f"{what} must be integer class ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _same_length(predictions: np.ndarray, labels: np.ndarray) -> None:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")


def confusion(predictions: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """Counts `[label, prediction]`, shape (K, K + 1); the last column counts invalid predictions.

    K is `num_classes`, else inferred as 1 + the largest id seen (at least 2).
    """
    preds, gold = _class_ids(predictions, "predictions"), _class_ids(labels, "labels")
    _same_length(preds, gold)
    k = num_classes if num_classes is not None else max(2, int(gold.max()) + 1, int(preds.max()) + 1)
    if k < 2:
        raise ValueError(f"Classification needs at least 2 classes, got num_classes={k}")
    if gold.min() < 0 or gold.max() >= k:
        raise ValueError(f"labels must be class ids in [0, {k}), got values in [{gold.min()}, {gold.max()}]")
    preds = np.where((preds < 0) | (preds >= k), k, preds)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(matrix, (gold, preds), 1)
    return matrix


def accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> float:
    matrix = confusion(predictions, labels, num_classes)
    return float(np.trace(matrix) / matrix.sum())


def _class_f1(matrix: np.ndarray, c: int) -> float:
    """2TP / (2TP + FP + FN): the harmonic mean of precision and recall, 0 without any true or predicted c."""
    tp = matrix[c, c]
    denominator = matrix[c, :].sum() + matrix[:, c].sum()
    return float(2 * tp / denominator) if denominator else 0.0


def f1(predictions: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> float:
    """Binary (K = 2): F1 of class 1, as GLUE reports for MRPC and QQP. K > 2: macro-F1, the unweighted mean
    over the classes that occur among labels or predictions (scikit-learn's `average="macro"`; SuperGLUE CB)."""
    matrix = confusion(predictions, labels, num_classes)
    k = matrix.shape[0]
    if k == 2:
        return _class_f1(matrix, 1)
    present = [c for c in range(k) if matrix[c, :].sum() + matrix[:, c].sum()]
    return float(np.mean([_class_f1(matrix, c) for c in present]))


def mcc(predictions: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> float:
    """Matthews correlation, in Gorodkin's K-class form (2004); for K = 2 it is (TP·TN − FP·FN) / sqrt(...).

    (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)) with c correct, s total, p_k predicted and t_k true
    counts of class k; the invalid column is one more predicted class that no label has.
    """
    matrix = confusion(predictions, labels, num_classes).astype(np.float64)
    true_counts, predicted_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    correct, total = np.trace(matrix), matrix.sum()
    covariance = correct * total - true_counts @ predicted_counts[:-1]
    variance = (total**2 - predicted_counts @ predicted_counts) * (total**2 - true_counts @ true_counts)
    return float(covariance / np.sqrt(variance)) if variance > 0 else 0.0


def _values(predictions: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    preds = _vector(predictions, "predictions").astype(np.float64)
    gold = _vector(labels, "labels").astype(np.float64)
    _same_length(preds, gold)
    if not (np.isfinite(preds).all() and np.isfinite(gold).all()):
        raise ValueError("regression predictions and labels must be finite (map unparseable outputs to a value)")
    return preds, gold


def _defined(preds: np.ndarray, gold: np.ndarray) -> bool:
    """A correlation needs two points and variation on both sides."""
    return len(preds) > 1 and np.ptp(preds) > 0 and np.ptp(gold) > 0


def pearson(predictions: ArrayLike, labels: ArrayLike) -> float:
    preds, gold = _values(predictions, labels)
    return float(scipy.stats.pearsonr(preds, gold).statistic) if _defined(preds, gold) else 0.0


def spearman(predictions: ArrayLike, labels: ArrayLike) -> float:
    preds, gold = _values(predictions, labels)
    return float(scipy.stats.spearmanr(preds, gold).statistic) if _defined(preds, gold) else 0.0


CLASSIFICATION_METRICS: dict[str, Callable[[ArrayLike, ArrayLike, int | None], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
}
REGRESSION_METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {"pearson": pearson, "spearman": spearman}
METRICS = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)


def evaluate(task: ScoredTask, predictions: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Every metric of `task`, plus "score": the mean of its main metrics."""
    if task.kind == "classification":
        known = CLASSIFICATION_METRICS
        results = {m: known[m](predictions, labels, task.num_labels) for m in task.metrics if m in known}
    else:
        known = REGRESSION_METRICS
        results = {m: known[m](predictions, labels) for m in task.metrics if m in known}
    if missing := [m for m in task.metrics if m not in results]:
        raise ValueError(f"Task {task.name} ({task.kind}) asks for metrics {missing}; {task.kind} has {list(known)}")
    results["score"] = float(np.mean([results[m] for m in task.main_metrics]))
    return results


def constant_baseline(task: ScoredTask, labels: ArrayLike) -> dict[str, float]:
    """The best :func:`evaluate` result of answering one fixed value for every example: each class for a
    classification task, the mean label for regression. A finetuned model that scores no higher learned nothing
    the label distribution does not already give."""
    labels = np.asarray(labels)
    if task.kind == "classification":
        candidates = [np.full(len(labels), c) for c in range(task.num_labels)]
    else:
        candidates = [np.full(len(labels), float(np.mean(labels)))]
    return max((evaluate(task, c, labels) for c in candidates), key=lambda r: r["score"])


def aggregate(scores: Mapping[str, float]) -> float:
    """The unweighted mean over tasks of their "score" (GLUE's average), in the same units as the scores."""
    if not scores:
        raise ValueError("No task scores to aggregate")
    if bad := {name: s for name, s in scores.items() if not np.isfinite(s)}:
        raise ValueError(f"Non-finite task scores {bad}")
    return float(np.mean(list(scores.values())))
