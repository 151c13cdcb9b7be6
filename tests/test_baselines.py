"""Trivial baselines of the pretraining objectives: closed forms on hand-built batches, the trainer's own eval
batches, and the embedded corpus's unigram (issue 18 quotes about 6.5 nats for sotu_mlm)."""

import itertools
import math

import numpy as np
import pytest

from scaling.data import baselines, vocab
from scaling.training import trainer

V, EXTRA = 10, 3  # ids 0 pad, 1 EOS, 2..6 content, 7..9 sentinels
S0, S1 = V - 1, V - 2


def mlm_batch(targets: list[int], weights: list[float]) -> dict[str, np.ndarray]:
    return {
        "encoder_target_tokens": np.array([targets], np.int32),
        "encoder_loss_weights": np.array([weights], np.float32),
    }


def span_batch(targets: list[int]) -> dict[str, np.ndarray]:
    tokens = np.array([targets], np.int32)
    return {"decoder_target_tokens": tokens, "decoder_loss_weights": (tokens > 0).astype(np.float32)}


def test_unigram_has_the_closed_form_of_add_one_smoothing():
    # Training: id 3 three times, id 4 once (a weight-0 position and pad never count); 9 ids in the support.
    train = baselines.weighted_targets([mlm_batch([3, 3, 5, 3, 4, 0], [1, 1, 0, 1, 1, 0])], "mlm")
    evaluation = baselines.weighted_targets([mlm_batch([3, 4, 6, 0], [1, 1, 1, 0])], "mlm")
    assert train.total == 4 and evaluation.total == 3
    (row,) = baselines.baselines(train, evaluation, "mlm", V, EXTRA)
    p3, p4, p6 = 4 / 13, 2 / 13, 1 / 13  # (count + 1) / (4 + 9)
    assert row["eval_loss"] == pytest.approx(-(math.log(p3) + math.log(p4) + math.log(p6)) / 3, abs=1e-12)
    assert row["eval_accuracy"] == pytest.approx(1 / 3)  # always answering id 3
    assert (row["baseline"], row["train_tokens_counted"], row["eval_targets"]) == ("unigram", 4, 3)


def test_unigram_of_two_frequent_tokens_is_their_entropy():
    rng = np.random.default_rng(0)
    n = 400_000
    train = baselines.Targets(np.where(rng.random(n) < 0.75, 3, 4), np.ones(n))
    evaluation = baselines.Targets(np.array([3, 3, 3, 4]), np.ones(4))  # the same 3:1 frequencies
    loss, accuracy = baselines.score(baselines.unigram_log_probs(train, np.arange(V) > 0), evaluation)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert loss == pytest.approx(entropy, abs=1e-3) and accuracy == 0.75


def test_sentinels_right_predicts_sentinels_and_eos_exactly_and_beats_the_unigram():
    # Targets: <S0> a a <S1> b EOS per example; content a=3, b=4.
    example = [S0, 3, 3, S1, 4, vocab.EOS_ID]
    train = baselines.weighted_targets([span_batch(example * 3 + [0, 0])], "span_corruption")
    evaluation = baselines.weighted_targets([span_batch(example)], "span_corruption")
    unigram, sentinels = baselines.baselines(train, evaluation, "span_corruption", V, EXTRA)
    assert sentinels["baseline"] == baselines.SENTINELS_RIGHT and sentinels["train_tokens_counted"] == 9
    # Content: 6 × a, 3 × b over the 5 content ids (2..6): p(a) = 7/14, p(b) = 4/14; the three others cost 0.
    assert sentinels["eval_loss"] == pytest.approx(-(2 * math.log(7 / 14) + math.log(4 / 14)) / 6, abs=1e-12)
    assert sentinels["eval_accuracy"] == pytest.approx(5 / 6)  # sentinels, EOS and both a's
    assert sentinels["eval_loss"] < unigram["eval_loss"] and sentinels["eval_accuracy"] > unigram["eval_accuracy"]


def test_score_refuses_an_empty_eval_set():
    with pytest.raises(ValueError, match="no weighted targets"):
        baselines.score(np.zeros(V), baselines.Targets(np.zeros(0, int), np.zeros(0)))


@pytest.mark.parametrize(
    ("task", "micro"), [("sotu_span_corruption", None), ("sotu_mlm", 2)], ids=["span_corruption", "mlm"]
)
def test_eval_batches_are_the_trainers(task, micro):
    config = trainer.default_config()
    config.model.name = "tiny-nl1-dm32-ff64-nh2-kv16" if task.endswith("corruption") else "bert-tiny-dm32-ff64-nh2"
    config.data.task, config.data.inputs_length, config.data.targets_length = task, 32, 8
    config.data.eval_batches, config.batch_size, config.micro_batch_size = 3, 4, micro
    run = trainer.build_run(config)
    theirs = list(itertools.islice(trainer.batches(run, config.data.eval_split, 0), config.data.eval_batches))
    ours = list(baselines.eval_batches(config))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], np.asarray(b[key]))


@pytest.mark.slow
def test_embedded_corpus_baselines_are_deterministic_and_near_the_issues_figure():
    config = trainer.default_config()
    config.data.inputs_length, config.data.targets_length, config.data.eval_batches = 128, 29, 8
    config.batch_size, config.micro_batch_size = 64, 16
    config.data.task = "sotu_mlm"
    mlm = baselines.objective_baselines(config, train_rows=4096)
    assert mlm == baselines.objective_baselines(config, train_rows=4096)
    (unigram,) = mlm
    assert unigram["task"] == "sotu_mlm" and 6.3 < unigram["eval_loss"] < 6.8  # issue 18: "about 6.5 nats"
    assert 0.0 < unigram["eval_accuracy"] < 0.1 and unigram["train_tokens_counted"] > 70_000
    config.data.task = "sotu_span_corruption"
    unigram, sentinels = baselines.objective_baselines(config, train_rows=2048)
    assert unigram["eval_targets"] == sentinels["eval_targets"] == 8 * 16 * 29
    assert sentinels["eval_loss"] < unigram["eval_loss"] and sentinels["eval_accuracy"] > unigram["eval_accuracy"]
