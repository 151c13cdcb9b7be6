"""Trivial baselines of a pretraining objective, scored on the exact batches the trainer evaluates on.

A pretraining run has learned something only once its eval loss is clearly below what a predictor that ignores
the inputs reaches. For each task this module scores, on the trainer's eval batches (`config.data.eval_split`,
the first `config.data.eval_batches` micro-batches of `pipeline.get_batches` with the run's lengths, seed and
packing) and with the trainer's weights (span corruption: decoder targets with `decoder_loss_weights`, i.e.
every target including sentinels and EOS; MLM: the masked positions, `encoder_loss_weights`):

- ``unigram``: token frequencies of the training split's weighted targets (add-one smoothed over the
  vocabulary), cross-entropy in nats per weighted target; accuracy of always answering the most frequent target;
- ``sentinels_right_content_unigram`` (span corruption only): sentinels and EOS are predicted exactly (loss 0,
  counted correct) — given the inputs their positions are known — and every other target gets the unigram of
  the training split's content targets (smoothed over the ids content can take).

For MLM the unigram is that of the masked targets, so it already knows the 80/10/10 corruption never asks for
pad or EOS. The training counts read at most one epoch of the train split, in the pipeline's order (a sorted
corpus such as `sotu_cramming_mlm` is counted in its sorted order, so count the whole epoch there).

The eval batches are those of a single-process run (shard 0 of 1); a multi-process run evaluates the union of its
processes' shards, which draws different rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping

import ml_collections
import numpy as np

from scaling.data import pipeline, tasks, vocab

UNIGRAM = "unigram"
SENTINELS_RIGHT = "sentinels_right_content_unigram"
# Rows of the training split counted by default (at most one epoch is read): more than one epoch of the embedded
# corpus at length 128 (~17k rows), so a sorted corpus is counted whole; ~420k masked targets at 15% masking
# (~50 per vocabulary entry). sotu_mlm's unigram moves by 0.015 nats from 8k to 16k rows, sotu_cramming_mlm's (sorted,
# so a part is not a sample) by 0.075.
TRAIN_ROWS = 32_768
_READ_BATCH = 256  # rows per batch while counting: the rows do not depend on the batch size, only the speed does


@dataclasses.dataclass(frozen=True)
class Targets:
    """The weighted targets of some batches, flattened: `tokens[i]` counts with weight `weights[i]` > 0."""

    tokens: np.ndarray
    weights: np.ndarray

    @property
    def total(self) -> float:
        return float(self.weights.sum())


def feature_lengths(config: ml_collections.ConfigDict) -> dict[str, int]:
    """The lengths the trainer reads the config's task with (as `trainer.build_run`)."""
    if tasks.task_spec(config.data.task).objective == "mlm":
        return {"inputs": config.data.inputs_length}
    return {"inputs": config.data.inputs_length, "targets": config.data.targets_length}


def eval_batches(config: ml_collections.ConfigDict) -> Iterator[dict[str, np.ndarray]]:
    """The micro-batches a single-process run of `config` evaluates on, as the trainer reads them."""
    batches = pipeline.get_batches(
        config.data.task,
        split=config.data.eval_split,
        feature_lengths=feature_lengths(config),
        batch_size=config.micro_batch_size or config.batch_size,
        seed=config.seed,
        pack=config.data.pack,
        shard_index=0,
        num_shards=1,
    )
    return (batch for _, batch in zip(range(config.data.eval_batches), batches))


def train_batches(config: ml_collections.ConfigDict, rows: int) -> Iterator[dict[str, np.ndarray]]:
    """About `rows` rows of the training split (whole read batches, at most one epoch), in training's order."""
    batches = pipeline.get_batches(
        config.data.task,
        split="train",
        feature_lengths=feature_lengths(config),
        batch_size=_READ_BATCH,
        seed=config.seed,
        pack=config.data.pack,
        shard_index=0,
        num_shards=1,
        repeat=False,
    )
    return (batch for _, batch in zip(range(math.ceil(rows / _READ_BATCH)), batches))


def weighted_targets(batches: Iterable[Mapping[str, np.ndarray]], objective: str) -> Targets:
    """The targets the model's loss counts and their weights (`models.T5.loss`, `models.Bert.loss`)."""
    tokens, weights = [], []
    for batch in batches:
        if objective == "mlm":
            target, weight = batch["encoder_target_tokens"], batch["encoder_loss_weights"]
        else:
            target = batch["decoder_target_tokens"]
            weight = batch.get("decoder_loss_weights", (target > 0).astype(np.float32))
        keep = weight > 0
        tokens.append(np.asarray(target)[keep])
        weights.append(np.asarray(weight, np.float64)[keep])
    if not tokens:
        return Targets(np.zeros(0, np.int64), np.zeros(0))
    return Targets(np.concatenate(tokens).astype(np.int64), np.concatenate(weights))


def unigram_log_probs(targets: Targets, support: np.ndarray) -> np.ndarray:
    """log p(id) with add-one (Laplace) smoothing over the ids where `support` is True; -inf elsewhere."""
    counts = np.bincount(targets.tokens, weights=targets.weights, minlength=support.size)[: support.size]
    if np.any(counts[~support]):
        raise ValueError("targets outside the support were counted")
    smoothed = np.where(support, counts + 1.0, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(smoothed / smoothed.sum())


def score(log_probs: np.ndarray, targets: Targets, exact: np.ndarray | None = None) -> tuple[float, float]:
    """(mean cross-entropy in nats, accuracy) per weighted target of always predicting `log_probs`.

    Targets where `exact[id]` is True are predicted with certainty instead (loss 0, correct).
    """
    if targets.total <= 0:
        raise ValueError("no weighted targets to score")
    exact = np.zeros(log_probs.size, bool) if exact is None else exact
    known = exact[targets.tokens]
    losses = np.where(known, 0.0, -log_probs[targets.tokens])
    correct = known | (targets.tokens == int(np.argmax(log_probs)))
    return float(np.dot(losses, targets.weights) / targets.total), float(
        np.dot(correct, targets.weights) / targets.total
    )


def sentinel_ids(vocabulary_size: int, extra_ids: int) -> np.ndarray:
    """True on the ids whose position span-corruption inputs give away: EOS and the sentinels (the extra ids)."""
    known = np.zeros(vocabulary_size, bool)
    known[vocab.EOS_ID] = True
    known[vocabulary_size - extra_ids :] = True
    return known


def baselines(
    train: Targets, evaluation: Targets, objective: str, vocabulary_size: int, extra_ids: int
) -> list[dict[str, float | str]]:
    """The baselines of one objective: (baseline, eval_loss, eval_accuracy, train_tokens_counted, eval_targets)."""
    support = np.ones(vocabulary_size, bool)
    support[vocab.PAD_ID] = False  # pad is never a weighted target
    loss, accuracy = score(unigram_log_probs(train, support), evaluation)
    rows = [_row(UNIGRAM, loss, accuracy, train.total, evaluation.total)]
    if objective == "span_corruption":
        known = sentinel_ids(vocabulary_size, extra_ids)
        content = ~known[train.tokens]
        content_train = Targets(train.tokens[content], train.weights[content])
        loss, accuracy = score(unigram_log_probs(content_train, support & ~known), evaluation, exact=known)
        rows.append(_row(SENTINELS_RIGHT, loss, accuracy, content_train.total, evaluation.total))
    return rows


def _row(name: str, loss: float, accuracy: float, counted: float, targets: float) -> dict[str, float | str]:
    return {
        "baseline": name,
        "eval_loss": loss,
        "eval_accuracy": accuracy,
        "train_tokens_counted": int(counted),
        "eval_targets": int(targets),
    }


def objective_baselines(config: ml_collections.ConfigDict, train_rows: int = TRAIN_ROWS) -> list[dict]:
    """The trivial baselines of `config`'s pretraining task on its eval batches, one dict per baseline (keys
    `task`, `baseline`, `eval_loss`, `eval_accuracy`, `train_tokens_counted`, `eval_targets`).

    Deterministic: the same config gives the same numbers. `train_rows` rows of the training split (rounded up to
    whole batches of 256, at most one epoch) are counted; on the embedded corpus at length 128 the default reads
    the whole epoch, in 15-30 s on two cores.
    """
    if train_rows <= 0:
        raise ValueError(f"train_rows = {train_rows}: count at least one row")
    task = config.data.task
    objective = tasks.task_spec(task).objective
    vocabulary = tasks.vocabulary(task)
    train = weighted_targets(train_batches(config, train_rows), objective)
    evaluation = weighted_targets(eval_batches(config), objective)
    rows = baselines(train, evaluation, objective, vocabulary.vocab_size, vocabulary.extra_ids)
    return [{"task": task, **row} for row in rows]
