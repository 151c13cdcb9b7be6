"""Downstream finetuning: features, rank classification, the head, learning, outputs, resume and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_trainer import quiet, tiny_config

from scaling import models, optim, shapes
from scaling.analysis import runs
from scaling.data import vocab as vocab_lib
from scaling.downstream import datasets, finetune
from scaling.errors import UserError
from scaling.models import heads
from scaling.training import trainer

ROOT = Path(__file__).resolve().parents[1]
T5_TINY = "tiny-nl1-dm32-ff64-nh2-kv16"
BERT_TINY = "bert-tiny-nl1-dm32-ff64-nh2"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Pretraining workdirs (two steps each) of a tiny T5 and a tiny BERT."""
    root = tmp_path_factory.mktemp("pretrained")
    trainer.train(tiny_config(**{"budget.amount": 2}), root / "t5", print_fn=quiet)
    bert = tiny_config(**{"model.name": BERT_TINY, "data.task": "sotu_mlm", "budget.amount": 2})
    bert.optimizer.name = "adamw"
    trainer.train(bert, root / "bert", print_fn=quiet)
    return {"t5": root / "t5", "bert": root / "bert"}


def small_config(init_from: Path, **overrides):
    config = finetune.default_config()
    config.init_from = str(init_from)
    config.update(
        tasks="sms_spam",
        seeds="0",
        epochs=1,
        batch_size=16,
        inputs_length=32,
        dropout_rate=0.0,
        max_train_examples=64,
        max_eval_examples=40,
        eval_batch_size=16,
    )
    config.optimizer.learning_rate = 1e-3
    config.update(overrides)
    return config


def test_t5_features_are_text_to_text_rows():
    vocab = vocab_lib.default_vocabulary()
    task = datasets.get_task("rotten_tomatoes")
    examples = datasets.Examples([("a fine film",), ("dull",)], np.array([1, 0]))
    f = finetune.t5_features(task, examples, vocab, inputs_length=32)
    text = vocab.decode([int(t) for t in f["encoder_input_tokens"][0] if t > 1])
    assert text == "rotten tomatoes sentence: a fine film"
    for row, label in zip(f["decoder_target_tokens"], ("positive", "negative")):
        ids = [int(t) for t in row if t > 0]
        assert ids[-1] == vocab_lib.EOS_ID and vocab.decode(ids[:-1]) == label
    np.testing.assert_array_equal(f["decoder_input_tokens"][:, 1:], f["decoder_target_tokens"][:, :-1])
    assert (f["decoder_input_tokens"][:, 0] == 0).all()
    np.testing.assert_array_equal(f["decoder_loss_weights"], f["decoder_target_tokens"] > 0)


def test_bert_features_mark_cls_segments_and_types():
    vocab = vocab_lib.default_vocabulary()
    task = datasets.get_task("glue_mrpc")
    examples = datasets.Examples([("one two", "three")], np.array([1]))
    f = finetune.bert_features(task, examples, vocab, inputs_length=12)
    row, types = f["tokens"][0], f["token_types"][0]
    first = len(vocab.encode("one two")) + 2  # [CLS] a EOS
    assert row[0] == vocab_lib.sentinel_id(vocab, 1) and row[first - 1] == vocab_lib.EOS_ID
    assert (types[:first] == 0).all() and (types[first : first + len(vocab.encode("three")) + 1] == 1).all()


def test_rank_scores_are_the_log_likelihood_of_each_candidate():
    """Rank classification equals −(the model's own token loss) of each (input, candidate) pair."""
    shape = shapes.parse(T5_TINY, vocab_size=512)
    model = models.build(shape, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    tokens = jnp.array([[5, 6, 7, 1, 0], [8, 9, 1, 0, 0]], jnp.int32)
    candidates = jnp.array([[11, 1, 0], [12, 13, 1]], jnp.int32)
    got = jax.jit(finetune._rank_scores, static_argnums=0)(graphdef, params, tokens, candidates)
    loss_of = jax.jit(lambda batch: model.loss(batch)[0])
    for i in range(2):
        for j in range(2):
            targets = candidates[j][None]
            batch = {
                "encoder_input_tokens": tokens[i][None],
                "decoder_target_tokens": targets,
                "decoder_input_tokens": jnp.concatenate([jnp.zeros((1, 1), jnp.int32), targets[:, :-1]], 1),
            }
            loss = loss_of(batch)
            np.testing.assert_allclose(got[i, j], -loss, rtol=1e-5)


def test_classifier_head_reads_the_first_token_only():
    shape = shapes.parse(BERT_TINY, vocab_size=512)
    head = heads.SequenceClassifier(models.build(shape, rngs=nnx.Rngs(0)), 3, rngs=nnx.Rngs(1))
    tokens = jnp.array([[3, 4, 5, 6], [3, 4, 5, 6]], jnp.int32)
    out = head(tokens)
    assert out.shape == (2, 3) and out.dtype == jnp.float32
    with pytest.raises(ValueError, match="at least one output"):
        heads.SequenceClassifier(models.build(shape, rngs=nnx.Rngs(0)), 0, rngs=nnx.Rngs(1))


@pytest.mark.parametrize("family, steps, floor", [("t5", 450, 0.3), ("bert", 300, 0.5)])
def test_finetuning_learns_spam_detection(pretrained, family, steps, floor, tmp_path):
    """A few hundred steps take a tiny model well above chance (MCC 0 = always "ham") on held-out messages."""
    config = small_config(pretrained[family], max_train_examples=0, max_eval_examples=200)
    config.optimizer.learning_rate = 3e-3
    backbone = finetune.load_backbone(config.init_from)
    session = finetune.make_session(backbone.shape, backbone.vocabulary, "sms_spam", config)
    initial = finetune.initial_params(session, backbone, 0)
    before = session.evaluate(initial)
    _, after, taken = finetune.finetune(session, tmp_path, seed=0, steps=steps, params=lambda: initial, print_fn=quiet)
    assert taken == steps and after["mcc"] > floor > before["mcc"], (before, after)
    if family == "t5":
        assert after["exact_match_invalid_fraction"] < 0.05 and after["exact_match_mcc"] > floor
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == steps and records[-1]["eval_mcc"] == after["mcc"]  # the trainer's own writer


def test_finetuning_builds_the_optimizer_as_pretraining_does(pretrained):
    """Adafactor factors a scanned layer's arrays layer by layer in finetuning exactly as in pretraining: the
    finetuning run gets its optimizer from the trainer, with the parameters' partition specs."""
    config = small_config(pretrained["t5"])
    config.optimizer.update(name="adafactor", schedule="constant", learning_rate=1e-3)
    backbone = finetune.load_backbone(config.init_from)
    session = finetune.make_session(backbone.shape, backbone.vocabulary, "sms_spam", config)
    run = finetune.job(session, seed=0, steps=2, params=lambda: backbone.params).run
    pretrain = tiny_config(**{"budget.amount": 2})
    pretrain.optimizer = config.optimizer
    reference = trainer.build_run(pretrain)
    shapes_of = lambda r: jax.tree.map(lambda x: x.shape, jax.eval_shape(lambda: trainer.init_state(r))["opt_state"])
    assert shapes_of(run) == shapes_of(reference)
    abstract = jax.eval_shape(lambda: trainer.init_state(run))["params"]
    one_block = jax.eval_shape(optim.make_optimizer(config.optimizer).init, abstract)
    assert jax.tree.map(lambda x: x.shape, one_block) != shapes_of(run)  # the drifted construction differs


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_a_non_finite_finetuning_batch_follows_nan_policy(pretrained, policy, tmp_path):
    config = small_config(pretrained["bert"], tasks="movie_ratings", nan_policy=policy)
    backbone = finetune.load_backbone(config.init_from)
    session = finetune.make_session(backbone.shape, backbone.vocabulary, "movie_ratings", config)
    session.train_features["labels"] = np.full_like(session.train_features["labels"], np.nan)
    initial = finetune.initial_params(session, backbone, 0)
    if policy == "stop":
        with pytest.raises(trainer.NonFiniteLossError, match="not finite at step 1"):
            finetune.finetune(session, tmp_path, seed=0, steps=3, params=lambda: initial, print_fn=quiet)
        return
    params, _, taken = finetune.finetune(session, tmp_path, seed=0, steps=3, params=lambda: initial, print_fn=quiet)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert taken == 3 and summary["final_metrics"]["skipped_steps"] == 3
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, initial)
    assert all(jax.tree.leaves(same))  # every update was dropped


def test_finetuning_resumes_exactly(pretrained, tmp_path):
    """Killed and rerun, a finetuning ends with the same parameters as one that ran straight through."""
    config = small_config(pretrained["bert"], dropout_rate=0.1)
    config.checkpoint.save_interval_steps = 2
    backbone = finetune.load_backbone(config.init_from)
    session = finetune.make_session(backbone.shape, backbone.vocabulary, "sms_spam", config)
    initial = lambda: finetune.initial_params(session, backbone, 0)
    straight, _, _ = finetune.finetune(session, tmp_path / "a", seed=0, steps=6, params=initial, print_fn=quiet)
    job = finetune.job(session, seed=0, steps=6, params=initial)
    trainer.fit(job, tmp_path / "b", stop_after_steps=3, print_fn=quiet)
    resumed, _, _ = finetune.finetune(session, tmp_path / "b", seed=0, steps=6, params=initial, print_fn=quiet)
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), straight, resumed)
    assert all(jax.tree.leaves(same))


def test_run_writes_results_resumes_and_reloads(pretrained, tmp_path):
    config = small_config(pretrained["bert"], tasks="sms_spam,movie_ratings", seeds="3,1")
    summary = finetune.run(config, tmp_path, print_fn=quiet)
    assert set(summary["tasks"]) == {"sms_spam", "movie_ratings"}
    for task in summary["tasks"].values():
        assert task["seeds"] == [3, 1] and set(task["median"]) >= {"score"}
    assert summary["aggregate"] == pytest.approx(np.mean([t["median"]["score"] for t in summary["tasks"].values()]))
    table = runs.read_table(tmp_path / "finetune.csv")
    assert len(table) == 4 and set(table["task"]) == {"sms_spam", "movie_ratings"}

    seed_dir = tmp_path / "movie_ratings" / "seed_3"
    before = (seed_dir / "result.json").read_text()
    assert finetune.run(config, tmp_path, print_fn=quiet) == summary  # nothing is redone
    assert (seed_dir / "result.json").read_text() == before

    loaded = finetune.load_finetuned(seed_dir)
    assert loaded.task == "movie_ratings" and loaded.shape.d_model == 32
    assert loaded.params["classifier"][...].shape == (32, 1)  # regression: one output
    assert "head_dense" not in loaded.params["backbone"]  # the MLM head is not part of the task model


def test_finetuned_t5_decodes_label_words(pretrained, tmp_path):
    config = small_config(pretrained["t5"])
    finetune.run(config, tmp_path, print_fn=quiet)
    result = json.loads((tmp_path / "sms_spam" / "seed_0" / "result.json").read_text())
    assert {"score", "mcc", "exact_match_mcc", "exact_match_invalid_fraction"} <= set(result["metrics"])
    loaded = finetune.load_finetuned(tmp_path / "sms_spam" / "seed_0")
    assert loaded.shape.is_encoder_decoder and loaded.vocabulary.vocab_size == vocab_lib.DEFAULT_VOCAB_SIZE


def test_t5_regression_ranks_the_rounded_values(pretrained):
    """A regression task is ranked over every rounded value, so predictions are values of the task's grid."""
    config = small_config(pretrained["t5"], max_eval_examples=20)
    backbone = finetune.load_backbone(config.init_from)
    session = finetune.make_session(backbone.shape, backbone.vocabulary, "movie_ratings", config)
    grid = {float(v) for v in session.task.regression_values()}
    assert session.candidates.shape[0] == len(grid) == 17  # −4 … 4 in steps of 0.5
    predictions = session.predict(finetune.initial_params(session, backbone, 0))
    assert predictions.shape == (20,) and set(predictions.tolist()) <= grid


def test_bad_input_is_named(pretrained, tmp_path):
    with pytest.raises(finetune.FinetuneError, match="init_from is not set"):
        finetune.validate(finetune.default_config())
    with pytest.raises(finetune.FinetuneError, match="config.tasks:.*known"):
        finetune.validate(small_config(pretrained["t5"], tasks="sst3"))
    with pytest.raises(finetune.FinetuneError, match="config.seeds"):
        finetune.validate(small_config(pretrained["t5"], seeds="a,b"))
    with pytest.raises(UserError, match="not a model|no model|neither"):
        finetune.load_backbone(tmp_path)
    with pytest.raises(finetune.FinetuneError, match="no task head"):
        finetune.load_finetuned(pretrained["t5"])
    with pytest.raises(finetune.FinetuneError, match="fewer than config.batch_size"):
        finetune.run(small_config(pretrained["t5"], max_train_examples=8), tmp_path / "few", print_fn=quiet)
    with pytest.raises(finetune.FinetuneError, match="vocabulary .* not found"):
        finetune.load_backbone(pretrained["t5"], vocabulary=str(tmp_path / "missing.model"))


def test_cli_finetunes_and_reports_errors(pretrained, tmp_path, capsys, monkeypatch):
    command = [
        sys.executable,
        "-m",
        "scaling.finetune",
        "--config=configs/finetune.py:demo",
        f"--workdir={tmp_path / 'ft'}",
        f"--config.init_from={pretrained['bert']}",
        "--config.tasks=trec",
        "--config.max_train_examples=32",
        "--config.max_eval_examples=16",
        "--config.epochs=1",
        "--config.inputs_length=24",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trec: median score" in done.stdout and (tmp_path / "ft" / "results.json").is_file()
    from scaling import finetune as finetune_command

    monkeypatch.chdir(ROOT)
    assert finetune_command.main(command[3:5] + [f"--config.init_from={tmp_path / 'nowhere'}"]) == 2  # usage mistake
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"{tmp_path / 'nowhere'}" in err[0], err
