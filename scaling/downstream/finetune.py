"""Downstream finetuning: one global set of hyperparameters for every task, several seeds, the median reported.

    python -m scaling.finetune --config=configs/finetune.py --workdir=DIR \\
        --config.init_from=PRETRAIN_WORKDIR [--config.tasks=rotten_tomatoes,trec] [--config.FIELD=VALUE ...]

`init_from` is a pretraining workdir (`python -m scaling.train`; its newest checkpoint is used) or a converted
checkpoint (`python -m scaling.convert`). Tasks come from :mod:`scaling.downstream.datasets`: the offline suite
(Rotten Tomatoes, movie ratings, TREC, SMS spam) or GLUE/SuperGLUE through tfds where prepared.

- T5 is finetuned text to text: the input is the task's T5 text (``rotten tomatoes sentence: …``), the target
  the label word (regression: the value rounded to the task's step, as T5 does for STS-B). It is scored two
  ways: rank classification (the label, or rounded value, with the highest log-likelihood; the main score)
  and exact match of the greedy decode (``exact_match_*`` metrics; unparseable outputs count as wrong).
- BERT gets :class:`scaling.models.heads.SequenceClassifier` on the first token, a ``[CLS]`` stand-in that our
  vocabulary lacks: ``<extra_id_1>``, an id pretraining never feeds (MLM masks with ``<extra_id_0>``).
  Sentence pairs are joined by EOS, with token types where the shape has them.
- Defaults are Cramming's global recipe (Section 5): AdamW, batch 16, learning rate 4e-5, cosine decay with
  10% warmup, dropout 0.1, 5 epochs. Every (task, seed) restarts from the pretrained weights.

Each (task, seed) is a run of the trainer (:func:`scaling.training.trainer.fit`) — the same compiled step,
optimizer construction, non-finite policy, gradient accumulation, budget, metrics, checkpoints, SIGTERM handling
and exact resume as pretraining — in its own workdir ``DIR/TASK/seed_S`` (``config.json``, ``metrics.jsonl``,
``checkpoints/``, ``summary.json``), which also becomes a model artifact (``model.json`` with the task head,
``vocabulary.model``, ``finetune.json``) that ``python -m scaling.compress`` and every model-reading command
accept. ``result.json`` there marks it finished; ``DIR/finetune.csv`` has one row per task and seed and
``DIR/results.json`` the medians over seeds and the aggregate score. A finished (task, seed) is never redone
and an interrupted one resumes from its checkpoint, so rerunning an interrupted command finishes the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import seqio
from flax import nnx

from scaling import accounting, csvfile, models, optim, parallel, shapes
from scaling.data import vocab as vocab_lib
from scaling.downstream import datasets, scores
from scaling.errors import UserError
from scaling.models import heads
from scaling.models import layers as L
from scaling.training import artifact, checkpoints, trainer

FINETUNE_FILE = "finetune.json"  # a finetuning workdir's task, task-model shape and finetuning config
RESULT_FILE = "result.json"
CSV_COLUMNS = (
    "model",
    "task",
    "seed",
    "split",
    "score",
    "metrics",
    "train_examples",
    "eval_examples",
    "steps",
    "seconds",
)


class FinetuneError(UserError):
    """A finetuning input that cannot work: a config value, a checkpoint, a task; the message says the fix."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a finetuning run reads (Cramming's global recipe); configs/finetune.py starts from it."""
    placeholder = ml_collections.config_dict.placeholder
    optimizer = optim.default_config()
    optimizer.update(name="adamw", learning_rate=4e-5, schedule="cosine", warmup_fraction=0.1, weight_decay=0.01)
    return ml_collections.ConfigDict(
        {
            "init_from": placeholder(str),  # pretraining workdir or converted checkpoint
            "vocabulary": placeholder(str),  # sentencepiece model; None: the pretraining task's vocabulary
            "tasks": "rotten_tomatoes",  # comma-separated names of scaling.downstream.datasets tasks
            "seeds": "0,1,2",  # one finetune per seed; medians are reported
            "epochs": 5,
            "batch_size": 16,
            "dropout_rate": 0.1,
            "inputs_length": 128,
            "eval_split": "validation",
            "eval_batch_size": 64,
            "max_train_examples": 0,  # 0: the whole training split
            "max_eval_examples": 0,  # 0: the whole evaluation split
            "data_dir": placeholder(str),  # tfds data_dir for GLUE / SuperGLUE
            "micro_batch_size": placeholder(int),  # gradient accumulation as in pretraining; None = batch_size
            "nan_policy": "stop",  # stop | skip, as in pretraining
            "log_every_steps": 50,
            "dtype": "auto",  # compute dtype, as config.model.dtype in pretraining
            "optimizer": optimizer,
            "parallel": parallel.default_config(),
            "checkpoint": checkpoints.default_config(),
        }
    )


def validate(config: ml_collections.ConfigDict) -> None:
    """Field checks before anything is loaded; each error names the field and the fix."""
    for field in ("epochs", "batch_size", "inputs_length", "eval_batch_size"):
        value = config[field]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise FinetuneError(f"config.{field} = {value!r}: use a positive integer")
    for field in ("max_train_examples", "max_eval_examples"):
        if not isinstance(config[field], int) or config[field] < 0:
            raise FinetuneError(f"config.{field} = {config[field]!r}: use 0 (all) or a positive integer")
    if not 0.0 <= config.dropout_rate < 1.0:
        raise FinetuneError(f"config.dropout_rate = {config.dropout_rate!r}: use a value in [0, 1)")
    if not config.init_from:
        raise FinetuneError("config.init_from is not set: give a pretraining workdir or a converted checkpoint")
    parse_seeds(config.seeds)
    for name in parse_list(config.tasks):
        try:
            datasets.get_task(name)
        except ValueError as e:
            raise FinetuneError(f"config.tasks: {e}") from None
    try:
        optim.make_optimizer(config.optimizer)
        optim.make_schedule(config.optimizer)
    except ValueError as e:
        raise FinetuneError(f"config.optimizer: {e}") from None


def parse_list(text: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise FinetuneError(f"config.tasks = {text!r}: name at least one task")
    return items


def parse_seeds(text: str | int) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise FinetuneError(f"config.seeds = {text!r}: use comma-separated integers such as '0,1,2'") from None
    if not seeds:
        raise FinetuneError(f"config.seeds = {text!r}: give at least one seed")
    return seeds


# ------------------------------------------------------------------------------------------ checkpoints


@dataclasses.dataclass(frozen=True)
class Backbone:
    """Pretrained weights with what reading text for them needs."""

    shape: shapes.Shape
    params: nnx.State
    vocabulary: seqio.Vocabulary
    source: str


def load_backbone(path: str | os.PathLike, vocabulary: str | None = None) -> Backbone:
    """The pretrained model of any artifact :func:`scaling.training.artifact.load` reads (a pretraining workdir,
    a converted checkpoint), on the default device; `vocabulary` replaces the one it carries."""
    if vocabulary and not Path(vocabulary).is_file():
        raise FinetuneError(f"vocabulary {vocabulary!r} not found: give a sentencepiece .model file")
    loaded = artifact.load(path, vocabulary=vocabulary)
    if loaded.head is not None:
        raise FinetuneError(
            f"{path} is already finetuned (on {loaded.head.get('task')}); start from the pretrained "
            f"checkpoint, or compress this one with `python -m scaling.compress`"
        )
    if loaded.vocabulary is None:
        raise FinetuneError(f"{path} carries no vocabulary: pass --config.vocabulary=PATH/spiece.model")
    return Backbone(loaded.shape, loaded.params, loaded.vocabulary, str(path))


@dataclasses.dataclass(frozen=True)
class Finetuned:
    """A finetuned model with its task head: a finetuning run's `TASK/seed_S` workdir, as loaded."""

    shape: shapes.Shape
    task: str
    params: nnx.State
    vocabulary: seqio.Vocabulary
    config: ml_collections.ConfigDict  # the finetuning config that trained it


def load_finetuned(directory: str | os.PathLike) -> Finetuned:
    """A model written by `python -m scaling.finetune` (`WORKDIR/TASK/seed_S`), on the default device."""
    directory = Path(directory)
    record_path = directory / FINETUNE_FILE
    if not record_path.is_file():
        raise FinetuneError(
            f"{directory} has no task head ({FINETUNE_FILE} missing): finetune a model first "
            f"with `python -m scaling.finetune --config.init_from=MODEL` and pass WORKDIR/TASK/seed_S"
        )
    record = json.loads(record_path.read_text())
    shape = shapes.Shape(**record["shape"])
    task = datasets.get_task(record["task"])
    abstract = nnx.split(build_model(shape, task, abstract=True))[1]
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    loaded = artifact.load(
        directory, abstract_params=checkpoints.abstract_like(abstract, jax.tree.map(lambda _: device, abstract))
    )
    return Finetuned(shape, task.name, loaded.params, loaded.vocabulary, ml_collections.ConfigDict(record["config"]))


def _write_json(path: Path, record: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the whole new one, never half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------- features


def _cls_id(vocabulary: seqio.Vocabulary) -> int:
    return vocab_lib.sentinel_id(vocabulary, 1)


def _pad(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:length]
    return out


def _encode(vocabulary: seqio.Vocabulary, text: str) -> list[int]:
    return list(vocabulary.encode(text))


def candidate_texts(task: datasets.DownstreamTask) -> tuple[str, ...]:
    """The target strings T5 ranks: the label words, or every rounded regression value."""
    if task.kind == "classification":
        return tuple(task.label_text(i) for i in range(task.num_labels))
    return tuple(task.regression_values())


def candidate_values(task: datasets.DownstreamTask) -> np.ndarray:
    """What each candidate predicts: a class id, or a regression value."""
    if task.kind == "classification":
        return np.arange(task.num_labels)
    return np.asarray([float(v) for v in task.regression_values()], np.float32)


def target_tokens(texts: Sequence[str], vocabulary: seqio.Vocabulary) -> np.ndarray:
    """[N, T] token rows (text + EOS, zero padded) with T fitting the longest."""
    rows = [_encode(vocabulary, t) + [vocab_lib.EOS_ID] for t in texts]
    return _pad(rows, max(len(r) for r in rows))


def t5_features(
    task: datasets.DownstreamTask, examples: datasets.Examples, vocabulary: seqio.Vocabulary, inputs_length: int
) -> dict[str, np.ndarray]:
    """Unpacked encoder-decoder rows; targets padded to the longest candidate so every row has one length."""
    inputs = [_encode(vocabulary, task.t5_input(f))[: inputs_length - 1] + [vocab_lib.EOS_ID] for f in examples.texts]
    candidates = target_tokens(candidate_texts(task), vocabulary)
    if task.kind == "classification":
        targets = candidates[examples.labels]
    else:
        targets = _pad(
            [_encode(vocabulary, task.label_text(v)) + [vocab_lib.EOS_ID] for v in examples.labels], candidates.shape[1]
        )
    return {
        "encoder_input_tokens": _pad(inputs, inputs_length),
        "decoder_target_tokens": targets,
        "decoder_input_tokens": np.asarray(L.shift_right(targets)),
        "decoder_loss_weights": (targets > 0).astype(np.float32),
        "labels": np.asarray(examples.labels),
    }


def bert_features(
    task: datasets.DownstreamTask, examples: datasets.Examples, vocabulary: seqio.Vocabulary, inputs_length: int
) -> dict[str, np.ndarray]:
    """[CLS] a EOS (b EOS) rows with token types 0/1, truncated from the end to the length."""
    tokens, types = [], []
    for fields in examples.texts:
        row, kinds = [_cls_id(vocabulary)], [0]
        for i, text in enumerate(fields):
            piece = _encode(vocabulary, text) + [vocab_lib.EOS_ID]
            row += piece
            kinds += [i] * len(piece)
        tokens.append(row)
        types.append(kinds)
    return {
        "tokens": _pad(tokens, inputs_length),
        "token_types": _pad(types, inputs_length),
        "labels": np.asarray(examples.labels),
    }


# ------------------------------------------------------------------------------------------------ model


def task_shape(shape: shapes.Shape, dropout_rate: float) -> shapes.Shape:
    """The shape finetuned: the finetuning dropout, and for BERT no MLM head (the task head replaces it, so
    memory and compression count only the weights the task model uses)."""
    shape = dataclasses.replace(shape, dropout_rate=dropout_rate)
    if shape.is_encoder_decoder:
        return shape
    return dataclasses.replace(shape, head_transform=False, decoder_bias=False, tie_embeddings=True)


def num_outputs(task: datasets.DownstreamTask) -> int:
    return task.num_labels if task.kind == "classification" else 1


def model_builder(task: datasets.DownstreamTask) -> trainer.ModelBuilder:
    """`models.build` for T5 (text to text), BERT with a first-token head of the task's width: the trainer's
    model for this task."""

    def build(shape: shapes.Shape, *, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
        backbone = models.build(shape, rngs=rngs, **kwargs)
        if shape.is_encoder_decoder:
            return backbone
        return heads.SequenceClassifier(backbone, num_outputs(task), rngs=rngs)

    return build


def build_model(
    shape: shapes.Shape, task: datasets.DownstreamTask, *, seed: int = 0, abstract: bool = False
) -> nnx.Module:
    """The task model with parameters from `seed` (or only their shapes)."""
    make = lambda: model_builder(task)(shape, rngs=nnx.Rngs(params=jax.random.key(seed)))
    return nnx.eval_shape(make) if abstract else make()


def _rank_scores(graphdef: nnx.GraphDef, params: nnx.State, tokens: jax.Array, candidates: jax.Array) -> jax.Array:
    """[B, C] log-likelihood of every candidate target given each row's inputs (T5 rank classification)."""
    model = nnx.merge(graphdef, params)
    b, c = tokens.shape[0], candidates.shape[0]
    segments = (tokens > 0).astype(jnp.int32)
    encoded = model.encode(tokens, segments)
    expand = lambda x: jnp.repeat(x, c, axis=0)
    targets = jnp.tile(candidates, (b, 1))
    logits = model.decode(expand(encoded), expand(segments), L.shift_right(targets), (targets > 0).astype(jnp.int32))
    logp = jax.nn.log_softmax(logits, axis=-1)
    token_logp = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * (targets > 0)
    return token_logp.sum(-1).reshape(b, c)


@dataclasses.dataclass
class Session:
    """One (model, task): encoded features, the task model's graph and its evaluation programs. Training is the
    trainer's (:func:`job`); params live outside and are passed in."""

    task: datasets.DownstreamTask
    shape: shapes.Shape
    vocabulary: seqio.Vocabulary
    graphdef: nnx.GraphDef
    train_features: dict[str, np.ndarray]
    eval_features: dict[str, np.ndarray]
    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    _programs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def candidates(self) -> np.ndarray:
        """[C, T] target tokens of every candidate T5 ranks (encoded once; the decode length is T)."""
        return target_tokens(candidate_texts(self.task), self.vocabulary)

    @property
    def encoder_decoder(self) -> bool:
        return self.shape.is_encoder_decoder

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_features["labels"]) // self.config.batch_size

    def _batch(self, features: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, jax.Array]:
        from scaling.data import pipeline

        return pipeline.make_global_batch({k: v[rows] for k, v in features.items()}, self.mesh)

    def train_batches(self, micro_batch_size: int, seed: int, position: int) -> Iterator[dict[str, jax.Array]]:
        """Training micro-batches from micro-batch `position` on: epoch e is a permutation drawn from (seed, e), so
        any position is reproducible and a resumed run reads exactly what an uninterrupted one would."""
        n = len(self.train_features["labels"])
        per_epoch = self.steps_per_epoch * (self.config.batch_size // micro_batch_size)
        while True:
            epoch, index = divmod(position, per_epoch)
            order = np.random.default_rng([seed, epoch]).permutation(n)
            yield self._batch(self.train_features, order[index * micro_batch_size :][:micro_batch_size])
            position += 1

    def predict(self, params: nnx.State, *, exact_match: bool = False) -> np.ndarray:
        """Predictions on the evaluation split: class ids or values; with `exact_match`, from greedy decodes."""
        features, size = self.eval_features, self.config.eval_batch_size
        n = len(features["labels"])
        out = []
        for start in range(0, n, size):
            rows = np.arange(start, start + size) % n  # the last batch wraps around; its extra rows are dropped
            batch = self._batch(features, rows)
            out.append(np.asarray(self._predict_batch(params, batch, exact_match))[: min(size, n - start)])
        return np.concatenate(out)

    def _predict_batch(self, params: nnx.State, batch: dict[str, jax.Array], exact_match: bool) -> Any:
        values = candidate_values(self.task)
        if not self.encoder_decoder:
            if "bert" not in self._programs:
                self._programs["bert"] = jax.jit(lambda p, t, ty: nnx.merge(self.graphdef, p)(t, ty))
            outputs = np.asarray(self._programs["bert"](params, batch["tokens"], batch["token_types"]))
            return outputs.argmax(-1) if self.task.kind == "classification" else outputs[:, 0]
        if exact_match:
            return self._exact_match(params, batch["encoder_input_tokens"])
        if "rank" not in self._programs:
            self._programs["rank"] = jax.jit(functools.partial(_rank_scores, self.graphdef))
        scores_ = self._programs["rank"](params, batch["encoder_input_tokens"], jnp.asarray(self.candidates))
        return values[np.asarray(scores_).argmax(-1)]

    def _exact_match(self, params: nnx.State, tokens: jax.Array) -> np.ndarray:
        from scaling.downstream import decode

        decoded = np.asarray(decode.greedy(nnx.merge(self.graphdef, params), tokens, self.candidates.shape[1]))
        missing = -1 if self.task.kind == "classification" else math.nan
        out = []
        for row in decoded:
            ids = [int(t) for t in row]
            ids = ids[: ids.index(vocab_lib.EOS_ID)] if vocab_lib.EOS_ID in ids else ids
            label = self.task.parse_label(self.vocabulary.decode(ids))
            out.append(missing if label is None else label)
        return np.asarray(out)

    def evaluate(self, params: nnx.State) -> dict[str, float]:
        """The task's metrics (and `score`); T5 adds the exact-match decode's as `exact_match_*`."""
        labels = self.eval_features["labels"]
        predictions = self.predict(params)
        result = scores.evaluate(self.task, predictions, labels)
        if self.task.kind == "classification":  # 1: the model collapsed to a constant answer
            result["predicted_classes"] = float(len(np.unique(predictions)))
        if self.encoder_decoder:
            decoded = self.predict(params, exact_match=True)
            invalid = np.isnan(decoded) if decoded.dtype.kind == "f" else decoded < 0
            if decoded.dtype.kind == "f":  # an unparseable value scores as the range's midpoint
                decoded = np.where(invalid, float(candidate_values(self.task).mean()), decoded)
            exact = scores.evaluate(self.task, decoded, labels)
            result.update({f"exact_match_{k}": v for k, v in exact.items()})
            result["exact_match_invalid_fraction"] = float(invalid.mean())
        return result


def make_session(
    shape: shapes.Shape, vocabulary: seqio.Vocabulary, task_name: str, config: ml_collections.ConfigDict
) -> Session:
    """Reads and encodes the task and builds the task model's graph (with the finetuning dropout)."""
    task = datasets.get_task(task_name)
    shape = task_shape(shape, config.dropout_rate)
    encode = t5_features if shape.is_encoder_decoder else bert_features
    splits = {}
    for split, limit in (("train", config.max_train_examples), (config.eval_split, config.max_eval_examples)):
        examples = datasets.load(task_name, split, data_dir=config.data_dir)
        splits[split] = encode(task, examples.subset(limit) if limit else examples, vocabulary, config.inputs_length)
    graphdef = nnx.split(build_model(shape, task, abstract=True))[0]
    return Session(
        task,
        shape,
        vocabulary,
        graphdef,
        splits["train"],
        splits[config.eval_split],
        config,
        parallel.make_mesh(config.parallel),
    )


def initial_params(session: Session, backbone: Backbone, seed: int) -> nnx.State:
    """The pretrained weights, plus (BERT) a head initialised from `seed` in place of the MLM head."""
    if session.encoder_decoder:
        return backbone.params
    fresh = nnx.split(build_model(session.shape, session.task, seed=seed))[1]
    pretrained = nnx.State({k: v for k, v in backbone.params.items() if k in fresh["backbone"]})
    return nnx.merge_state(fresh, nnx.State({"backbone": pretrained}))


# ------------------------------------------------------------------------------------------- training


def training_config(session: Session, seed: int, steps: int) -> ml_collections.ConfigDict:
    """The trainer's config for finetuning `session` with `seed` for `steps` updates: the finetuning recipe's
    optimizer, batch, non-finite policy, mesh and checkpoints; no periodic evaluation (the task is scored at the
    end)."""
    config = session.config
    out = trainer.default_config()
    out.update(
        {
            "seed": seed,
            "batch_size": config.batch_size,
            "micro_batch_size": config.micro_batch_size,
            "nan_policy": config.nan_policy,
            "log_every_steps": config.log_every_steps,
            "eval_every_steps": 0,
        }
    )
    out.model.update(
        {
            "name": session.shape.name,
            "vocab_size": session.shape.vocab_size,
            "dropout_rate": config.dropout_rate,
            "dtype": config.dtype,
        }
    )
    out.data.update({"task": session.task.name, "inputs_length": config.inputs_length})
    out.optimizer = ml_collections.ConfigDict(config.optimizer.to_dict())
    out.parallel = ml_collections.ConfigDict(config.parallel.to_dict())
    out.checkpoint = ml_collections.ConfigDict(config.checkpoint.to_dict())
    out.budget.update({"unit": "steps", "amount": float(steps)})
    return out


def job(
    session: Session,
    *,
    seed: int,
    steps: int,
    params: Callable[[], nnx.State],
    masks: Any = None,
    stop_early: Callable[[nnx.State], bool] | None = None,
    check_every: int = 0,
) -> trainer.Job:
    """Finetuning `session` as a trainer Job: `steps` updates of the trainer's one step from `params()` (called only
    on a fresh start), over reshuffled epochs; with `masks` the run is masked (pruning recovery) and pruned
    weights stay zero; `stop_early(params)` is asked before the first step and every `check_every` steps."""
    if session.steps_per_epoch == 0:
        raise FinetuneError(
            f"task {session.task.name} has {len(session.train_features['labels'])} training examples, "
            f"fewer than config.batch_size = {session.config.batch_size}"
        )
    config = training_config(session, seed, steps)
    if session.encoder_decoder:
        sequence = accounting.SequenceLengths(config.data.inputs_length, session.candidates.shape[1])
    else:
        sequence = accounting.SequenceLengths(config.data.inputs_length, 0, 0)
    run = trainer.make_run(
        config, session.shape, sequence, {}, build_model=model_builder(session.task), masked=masks is not None
    )
    return trainer.Job(
        run=run,
        train_batches=lambda position: session.train_batches(run.micro_batch_size, seed, position),
        initial_state=lambda: trainer.init_state(run, params(), masks),
        evaluate=lambda p: {f"eval_{k}": v for k, v in session.evaluate(p).items()},
        stop_early=stop_early,
        check_every=check_every,
        summary={"task": session.task.name},
    )


def finetune(
    session: Session,
    workdir: Path,
    *,
    seed: int,
    params: Callable[[], nnx.State],
    steps: int | None = None,
    print_fn: Callable[[str], None] = print,
    **job_options: Any,
) -> tuple[nnx.State, dict[str, float], int]:
    """Runs (or resumes, or reads back) one finetuning in `workdir`: (final params, task metrics, steps taken)."""
    steps = steps if steps is not None else session.config.epochs * session.steps_per_epoch
    fitted = trainer.fit(job(session, seed=seed, steps=steps, params=params, **job_options), workdir, print_fn=print_fn)
    final = fitted.state["params"]
    result = {k[len("eval_") :]: v for k, v in fitted.metrics.items() if k.startswith("eval_")}
    if "score" not in result:  # a run finished before an interruption: it is scored now, not retrained
        result = session.evaluate(final)
    return final, result, fitted.metrics["step"]


# -------------------------------------------------------------------------------------------------- run


def run(
    config: ml_collections.ConfigDict, workdir: str | Path, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Finetunes every (task, seed) not finished yet, then writes `finetune.csv` and `results.json`."""
    validate(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    backbone = load_backbone(config.init_from, config.vocabulary)
    rows = []
    for task_name in parse_list(config.tasks):
        session = None
        for seed in parse_seeds(config.seeds):
            out = workdir / task_name / f"seed_{seed}"
            if (out / RESULT_FILE).is_file():
                rows.append(json.loads((out / RESULT_FILE).read_text()))
                continue
            session = session or make_session(backbone.shape, backbone.vocabulary, task_name, config)
            describe(out, session, {"kind": "finetune", "source": backbone.source})
            start = time.perf_counter()
            params, result, steps = finetune(
                session, out, seed=seed, print_fn=lambda _: None, params=lambda: initial_params(session, backbone, seed)
            )
            seconds = time.perf_counter() - start
            row = {
                "model": backbone.shape.name,
                "task": task_name,
                "seed": seed,
                "split": config.eval_split,
                "score": result["score"],
                "metrics": result,
                "train_examples": len(session.train_features["labels"]),
                "eval_examples": len(session.eval_features["labels"]),
                "steps": steps,
                "seconds": seconds,
            }
            _write_json(out / RESULT_FILE, row)  # last: its presence means this (task, seed) is complete
            rows.append(row)
            print_fn(f"{task_name} seed {seed}: score {result['score']:.4f} after {steps} steps ({seconds:.0f} s)")
    return summarize(rows, workdir, print_fn)


def describe(
    out: Path, session: Session, provenance: dict[str, Any], config: ml_collections.ConfigDict | None = None
) -> None:
    """Makes a finetuning workdir a model artifact (:mod:`scaling.training.artifact`): the task model's shape, its
    head, the vocabulary and where it came from, plus ``finetune.json`` (task, shape and the finetuning config,
    which compression reads to finetune the same way again)."""
    artifact.describe_workdir(
        out,
        shape=session.shape,
        vocabulary=session.vocabulary,
        provenance={"task": session.task.name, **provenance},
        head={"task": session.task.name, "num_outputs": num_outputs(session.task)},
    )
    _write_json(
        out / FINETUNE_FILE,
        {
            "task": session.task.name,
            "shape": dataclasses.asdict(session.shape),
            "config": json.loads((config or session.config).to_json_best_effort()),
        },
    )


def summarize(rows: list[dict[str, Any]], workdir: Path, print_fn: Callable[[str], None] = print) -> dict[str, Any]:
    """Medians over seeds per task and metric, the aggregate of the median scores; CSV and JSON on disk."""
    csvfile.write(
        workdir / "finetune.csv",
        [{**row, "metrics": json.dumps(row["metrics"], sort_keys=True)} for row in rows],
        CSV_COLUMNS,
    )
    per_task: dict[str, Any] = {}
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        metric_names = mine[0]["metrics"].keys()
        per_task[name] = {
            "seeds": [r["seed"] for r in mine],
            "median": {m: statistics.median(r["metrics"][m] for r in mine) for m in metric_names},
        }
    summary = {
        "model": rows[0]["model"] if rows else None,
        "tasks": per_task,
        "aggregate": scores.aggregate({n: t["median"]["score"] for n, t in per_task.items()}),
    }
    _write_json(workdir / "results.json", summary)
    for name, t in per_task.items():
        print_fn(f"{name}: median score {t['median']['score']:.4f} over seeds {t['seeds']}")
    print_fn(f"aggregate: {summary['aggregate']:.4f}")
    return summary
