"""Downstream finetuning: one global set of hyperparameters for every task, several seeds, the median reported.

    python -m scaling.finetune --config=configs/finetune.py --workdir=DIR \\
        --config.init_from=PRETRAIN_WORKDIR [--config.tasks=rotten_tomatoes,trec] [--config.FIELD=VALUE ...]

`init_from` is a pretraining workdir (`python -m scaling.train`; its newest checkpoint is used) or a converted
checkpoint (`python -m scaling.convert`). Tasks come from :mod:`scaling.data.downstream`: the offline suite
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

Written under DIR: ``TASK/seed_S/result.json`` (its metrics), ``TASK/seed_S/params`` and ``finetune.json``
(the finetuned model with its head, which ``python -m scaling.compress`` reads), ``finetune.csv`` (one row
per task and seed) and ``results.json`` (medians over seeds and the aggregate score). A finished (task, seed)
is never redone, so rerunning an interrupted command finishes the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tfds runs on the host only; its device notes are noise

import jax  # noqa: E402
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import seqio
from flax import nnx

from scaling import checkpoints, models, optim, parallel, scores, shapes, trainer
from scaling.convert import store
from scaling.data import downstream, tasks
from scaling.data import vocab as vocab_lib
from scaling.models import heads

FINETUNED_FORMAT = "scaling-finetuned/1"
FINETUNED_FILE = "finetune.json"
RESULT_FILE = "result.json"
CSV_COLUMNS = ("model", "task", "seed", "split", "score", "metrics", "train_examples", "eval_examples", "steps",
               "seconds")


class FinetuneError(ValueError):
    """A finetuning input that cannot work: a config value, a checkpoint, a task; the message says the fix."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a finetuning run reads (Cramming's global recipe); configs/finetune.py starts from it."""
    placeholder = ml_collections.config_dict.placeholder
    optimizer = optim.default_config()
    optimizer.update(name="adamw", learning_rate=4e-5, schedule="cosine", warmup_fraction=0.1, weight_decay=0.01)
    return ml_collections.ConfigDict({
        "init_from": placeholder(str),    # pretraining workdir or converted checkpoint
        "vocabulary": placeholder(str),   # sentencepiece model; None: the pretraining task's vocabulary
        "tasks": "rotten_tomatoes",       # comma-separated names of scaling.data.downstream tasks
        "seeds": "0,1,2",                 # one finetune per seed; medians are reported
        "epochs": 5,
        "batch_size": 16,
        "dropout_rate": 0.1,
        "inputs_length": 128,
        "eval_split": "validation",
        "eval_batch_size": 64,
        "max_train_examples": 0,          # 0: the whole training split
        "max_eval_examples": 0,           # 0: the whole evaluation split
        "data_dir": placeholder(str),     # tfds data_dir for GLUE / SuperGLUE
        "save_params": True,
        "optimizer": optimizer,
        "parallel": parallel.default_config(),
    })


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
            downstream.get_task(name)
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


def _vocabulary(path: str | None, fallback: seqio.Vocabulary | None) -> seqio.Vocabulary:
    if path:
        if not Path(path).is_file():
            raise FinetuneError(f"vocabulary {path!r} not found: give a sentencepiece .model file")
        return vocab_lib.get_vocabulary(path)
    return fallback or vocab_lib.default_vocabulary()


def _check_vocabulary(vocabulary: seqio.Vocabulary, shape: shapes.Shape, source: str) -> None:
    if vocabulary.vocab_size > shape.vocab_size:
        raise FinetuneError(f"the vocabulary has {vocabulary.vocab_size} ids but {source} embeds only "
                            f"{shape.vocab_size}: set config.vocabulary to the model's own sentencepiece file")


def load_backbone(path: str | os.PathLike, vocabulary: str | None = None) -> Backbone:
    """The pretrained parameters of a pretraining workdir or a converted checkpoint, on the default device."""
    path = Path(path)
    if (path / FINETUNED_FILE).is_file():
        raise FinetuneError(f"{path} is already finetuned (it has {FINETUNED_FILE}); start from the pretrained "
                            f"checkpoint, or compress this one with `python -m scaling.compress`")
    if store.is_converted(path):
        shape = store.load_shape(path)
        abstract = nnx.split(models.abstract(shape))[1]
        params = store.restore_params(path, checkpoints.abstract_like(abstract, _single_device(abstract)))
        vocab = _vocabulary(vocabulary, None)
    elif (path / "config.json").is_file() and (path / "checkpoints").is_dir():
        pretrain = ml_collections.ConfigDict(json.loads((path / "config.json").read_text()))
        shape = trainer.resolve_shape(pretrain)
        abstract = nnx.split(models.abstract(shape))[1]
        tx = optim.make_optimizer(pretrain.optimizer, nnx.get_partition_spec(abstract))
        state = {"params": abstract, "opt_state": jax.eval_shape(tx.init, abstract)}
        with checkpoints.Checkpointer(path / "checkpoints", async_save=False) as ckpt:
            if ckpt.latest_step() is None:
                raise FinetuneError(f"{path / 'checkpoints'} holds no checkpoint yet; train first")
            params = ckpt.restore(checkpoints.abstract_like(state, _single_device(state))).state["params"]
        vocab = _vocabulary(vocabulary, tasks.vocabulary(pretrain.data.task))
    else:
        raise FinetuneError(f"{path} is neither a pretraining workdir (config.json + checkpoints/) nor a converted "
                            f"checkpoint (shape.json + params/)")
    _check_vocabulary(vocab, shape, str(path))
    return Backbone(shape, params, vocab, str(path))


def _single_device(tree: Any) -> Any:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda _: device, tree)


@dataclasses.dataclass(frozen=True)
class Finetuned:
    """A finetuned model with its task head, as :func:`save_finetuned` wrote it."""

    shape: shapes.Shape
    task: str
    params: nnx.State
    vocabulary: seqio.Vocabulary
    record: dict[str, Any]


def save_finetuned(directory: Path, shape: shapes.Shape, task: str, params: nnx.State,
                   vocabulary: seqio.Vocabulary, extra: dict[str, Any]) -> None:
    store.save_params(params, directory)
    spm = getattr(vocabulary, "sentencepiece_model_file", None)
    record = {"format": FINETUNED_FORMAT, "task": task, "shape": dataclasses.asdict(shape),
              "vocabulary": None if spm == str(vocab_lib.DEFAULT_SPM_PATH) else spm, **extra}
    _write_json(directory / FINETUNED_FILE, record)


def load_finetuned(directory: str | os.PathLike) -> Finetuned:
    """A model written by `python -m scaling.finetune` (params with the task head), on the default device."""
    directory = Path(directory)
    record_path = directory / FINETUNED_FILE
    if not record_path.is_file():
        what = ("a pretraining workdir" if (directory / "checkpoints").is_dir() else
                "a converted pretrained checkpoint" if (directory / "shape.json").is_file() else "not a checkpoint")
        raise FinetuneError(f"{directory} has no task head ({FINETUNED_FILE} missing; it is {what}): finetune it "
                            f"first with `python -m scaling.finetune --config.init_from={directory}` and pass "
                            f"WORKDIR/TASK/seed_S")
    record = json.loads(record_path.read_text())
    if record.get("format") != FINETUNED_FORMAT:
        raise FinetuneError(f"{record_path}: format {record.get('format')!r}, expected {FINETUNED_FORMAT!r}")
    shape = shapes.Shape(**record["shape"])
    task = downstream.get_task(record["task"])
    abstract = nnx.split(build_model(shape, task, abstract=True))[1]
    try:
        params = store.restore_params(directory, checkpoints.abstract_like(abstract, _single_device(abstract)))
    except Exception as error:  # orbax raises many types for missing or truncated files
        raise FinetuneError(f"{directory / store.PARAMS_DIR} could not be restored ({type(error).__name__}: "
                            f"{error}); rerun the finetuning that wrote it") from error
    return Finetuned(shape, task.name, params, _vocabulary(record.get("vocabulary"), None), record)


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
        out[i, :len(row)] = row[:length]
    return out


def _encode(vocabulary: seqio.Vocabulary, text: str) -> list[int]:
    return list(vocabulary.encode(text))


def candidate_texts(task: downstream.DownstreamTask) -> tuple[str, ...]:
    """The target strings T5 ranks: the label words, or every rounded regression value."""
    if task.kind == "classification":
        return tuple(task.label_text(i) for i in range(task.num_labels))
    return tuple(task.regression_values())


def candidate_values(task: downstream.DownstreamTask) -> np.ndarray:
    """What each candidate predicts: a class id, or a regression value."""
    if task.kind == "classification":
        return np.arange(task.num_labels)
    return np.asarray([float(v) for v in task.regression_values()], np.float32)


def target_tokens(texts: Sequence[str], vocabulary: seqio.Vocabulary) -> np.ndarray:
    """[N, T] token rows (text + EOS, zero padded) with T fitting the longest."""
    rows = [_encode(vocabulary, t) + [vocab_lib.EOS_ID] for t in texts]
    return _pad(rows, max(len(r) for r in rows))


def t5_features(task: downstream.DownstreamTask, examples: downstream.Examples, vocabulary: seqio.Vocabulary,
                inputs_length: int) -> dict[str, np.ndarray]:
    """Unpacked encoder-decoder rows; targets padded to the longest candidate so every row has one length."""
    inputs = [_encode(vocabulary, task.t5_input(f))[:inputs_length - 1] + [vocab_lib.EOS_ID]
              for f in examples.texts]
    candidates = target_tokens(candidate_texts(task), vocabulary)
    if task.kind == "classification":
        targets = candidates[examples.labels]
    else:
        targets = _pad([_encode(vocabulary, task.label_text(v)) + [vocab_lib.EOS_ID] for v in examples.labels],
                       candidates.shape[1])
    return {"encoder_input_tokens": _pad(inputs, inputs_length), "decoder_target_tokens": targets,
            "decoder_input_tokens": _shift_right(targets), "decoder_loss_weights": (targets > 0).astype(np.float32),
            "labels": np.asarray(examples.labels)}


def _shift_right(targets: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)


def bert_features(task: downstream.DownstreamTask, examples: downstream.Examples, vocabulary: seqio.Vocabulary,
                  inputs_length: int) -> dict[str, np.ndarray]:
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
    return {"tokens": _pad(tokens, inputs_length), "token_types": _pad(types, inputs_length),
            "labels": np.asarray(examples.labels)}


# ------------------------------------------------------------------------------------------------ model

def task_shape(shape: shapes.Shape, dropout_rate: float) -> shapes.Shape:
    """The shape finetuned: the finetuning dropout, and for BERT no MLM head (the task head replaces it, so
    memory and compression count only the weights the task model uses)."""
    shape = dataclasses.replace(shape, dropout_rate=dropout_rate)
    if shape.is_encoder_decoder:
        return shape
    return dataclasses.replace(shape, head_transform=False, decoder_bias=False, tie_embeddings=True)


def build_model(shape: shapes.Shape, task: downstream.DownstreamTask, *, seed: int = 0,
                abstract: bool = False) -> nnx.Module:
    """T5 as it is (text to text), BERT with a first-token head of the task's width."""
    def make() -> nnx.Module:
        rngs = nnx.Rngs(params=jax.random.key(seed))
        backbone = models.build(shape, rngs=rngs)
        if shape.is_encoder_decoder:
            return backbone
        return heads.SequenceClassifier(backbone, task.num_labels if task.kind == "classification" else 1, rngs=rngs)
    return nnx.eval_shape(make) if abstract else make()


def _objective(graphdef: nnx.GraphDef, task: downstream.DownstreamTask, encoder_decoder: bool) -> Callable:
    """(params, batch, rng) → (mean loss, accuracy-or-error): token cross-entropy, class cross-entropy or MSE."""
    def objective(params, batch, rng):
        model = nnx.merge(graphdef, params)
        if encoder_decoder:
            _, aux = model.loss(batch, dropout_rng=rng)
            return aux["loss_sum"] / jnp.maximum(aux["weight_sum"], 1.0)
        outputs = model(batch["tokens"], batch["token_types"], rng)
        if task.kind == "classification":
            return optax.softmax_cross_entropy_with_integer_labels(outputs, batch["labels"]).mean()
        return jnp.square(outputs[:, 0] - batch["labels"]).mean()
    return objective


def _rank_scores(graphdef: nnx.GraphDef, params: nnx.State, tokens: jax.Array, candidates: jax.Array) -> jax.Array:
    """[B, C] log-likelihood of every candidate target given each row's inputs (T5 rank classification)."""
    model = nnx.merge(graphdef, params)
    b, c = tokens.shape[0], candidates.shape[0]
    segments = (tokens > 0).astype(jnp.int32)
    encoded = model.encode(tokens, segments)
    expand = lambda x: jnp.repeat(x, c, axis=0)  # noqa: E731  rows b*c: example-major
    targets = jnp.tile(candidates, (b, 1))
    dec_inputs = jnp.concatenate([jnp.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)
    logits = model.decode(expand(encoded), expand(segments), dec_inputs, (targets > 0).astype(jnp.int32))
    logp = jax.nn.log_softmax(logits, axis=-1)
    token_logp = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * (targets > 0)
    return token_logp.sum(-1).reshape(b, c)


@dataclasses.dataclass
class Session:
    """One (model, task): features, the graph and its compiled steps; params live outside, passed in."""

    task: downstream.DownstreamTask
    shape: shapes.Shape
    vocabulary: seqio.Vocabulary
    graphdef: nnx.GraphDef
    train_features: dict[str, np.ndarray]
    eval_features: dict[str, np.ndarray]
    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    param_shardings: Any
    opt_shardings: Any
    tx: optax.GradientTransformation
    _steps: dict[str, Any] = dataclasses.field(default_factory=dict)

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

    def place(self, params: nnx.State) -> nnx.State:
        """A copy in the session's shardings: training donates it, and the caller's weights must survive."""
        return jax.device_put(params, self.param_shardings, may_alias=False)

    def _batch(self, features: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, jax.Array]:
        from scaling.data import pipeline

        batch = {k: v[rows] for k, v in features.items()}
        return pipeline.make_global_batch(batch, self.mesh)

    def _step(self, masked: bool) -> Callable:
        key = f"train{'_masked' if masked else ''}"
        if key not in self._steps:
            objective = _objective(self.graphdef, self.task, self.encoder_decoder)
            tx = self.tx

            def step(params, opt_state, batch, rng, lr, masks):
                loss, grads = jax.value_and_grad(objective)(params, batch, rng)
                opt_state = optim.set_learning_rate(opt_state, lr)
                updates, opt_state = tx.update(grads, opt_state, params)
                params = optax.apply_updates(params, updates)
                if masks is not None:  # pruned weights stay zero through recovery finetuning
                    params = jax.tree.map(lambda p, m: p * m.astype(p.dtype), params, masks)
                return params, opt_state, loss

            replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
            self._steps[key] = jax.jit(step, donate_argnums=(0, 1),
                                       out_shardings=(self.param_shardings, self.opt_shardings, replicated))
        return self._steps[key]

    def train(self, params: nnx.State, *, seed: int, steps: int | None = None, masks: Any = None,
              check_every: int = 0, should_stop: Callable[[nnx.State], bool] | None = None) -> tuple[nnx.State, int]:
        """`steps` AdamW updates (default: the configured epochs) over reshuffled epochs of the training split.

        With `should_stop`, it is asked before the first step and every `check_every` steps (recovery
        finetuning stops as soon as the score is back). Returns the params and the number of steps taken.
        """
        per_epoch = self.steps_per_epoch
        if per_epoch == 0:
            raise FinetuneError(f"task {self.task.name} has {len(self.train_features['labels'])} training examples, "
                                f"fewer than config.batch_size = {self.config.batch_size}")
        total = steps if steps is not None else self.config.epochs * per_epoch
        schedule = optim.make_schedule(self.config.optimizer)
        params = self.place(params)
        if "init" not in self._steps:
            self._steps["init"] = jax.jit(self.tx.init, out_shardings=self.opt_shardings)
        opt_state = self._steps["init"](params)
        step_fn = self._step(masks is not None)
        rng = np.random.default_rng(seed)
        base_key = jax.random.key(seed)
        order: np.ndarray = np.zeros(0, np.int64)
        for step in range(total):
            if should_stop is not None and (step == 0 or (check_every and step % check_every == 0)):
                if should_stop(params):
                    return params, step
            if step % per_epoch == 0:
                order = rng.permutation(len(self.train_features["labels"]))
            rows = order[(step % per_epoch) * self.config.batch_size:][:self.config.batch_size]
            lr = schedule(jnp.float32(step / max(total, 1)), step)
            params, opt_state, _ = step_fn(params, opt_state, self._batch(self.train_features, rows),
                                           jax.random.fold_in(base_key, step), lr, masks)
        return params, total

    def predict(self, params: nnx.State, *, exact_match: bool = False) -> np.ndarray:
        """Predictions on the evaluation split: class ids or values; with `exact_match`, from greedy decodes."""
        features, size = self.eval_features, self.config.eval_batch_size
        n = len(features["labels"])
        out = []
        for start in range(0, n, size):
            rows = np.arange(start, start + size) % n  # the last batch wraps around; its extra rows are dropped
            batch = self._batch(features, rows)
            out.append(np.asarray(self._predict_batch(params, batch, exact_match))[:min(size, n - start)])
        return np.concatenate(out)

    def _predict_batch(self, params: nnx.State, batch: dict[str, jax.Array], exact_match: bool) -> Any:
        values = candidate_values(self.task)
        if not self.encoder_decoder:
            if "bert" not in self._steps:
                self._steps["bert"] = jax.jit(lambda p, t, ty: nnx.merge(self.graphdef, p)(t, ty))
            outputs = np.asarray(self._steps["bert"](params, batch["tokens"], batch["token_types"]))
            return outputs.argmax(-1) if self.task.kind == "classification" else outputs[:, 0]
        if exact_match:
            return self._exact_match(params, batch["encoder_input_tokens"])
        if "rank" not in self._steps:
            self._steps["rank"] = jax.jit(functools.partial(_rank_scores, self.graphdef))
        scores_ = self._steps["rank"](params, batch["encoder_input_tokens"], jnp.asarray(self.candidates))
        return values[np.asarray(scores_).argmax(-1)]

    def _exact_match(self, params: nnx.State, tokens: jax.Array) -> np.ndarray:
        from scaling import decode

        decoded = np.asarray(decode.greedy(nnx.merge(self.graphdef, params), tokens, self.candidates.shape[1]))
        missing = -1 if self.task.kind == "classification" else math.nan
        out = []
        for row in decoded:
            ids = [int(t) for t in row]
            ids = ids[:ids.index(vocab_lib.EOS_ID)] if vocab_lib.EOS_ID in ids else ids
            label = self.task.parse_label(self.vocabulary.decode(ids))
            out.append(missing if label is None else label)
        return np.asarray(out)

    def evaluate(self, params: nnx.State) -> dict[str, float]:
        """The task's metrics (and `score`); T5 adds the exact-match decode's as `exact_match_*`."""
        labels = self.eval_features["labels"]
        result = scores.evaluate(self.task, self.predict(params), labels)
        if self.encoder_decoder:
            decoded = self.predict(params, exact_match=True)
            invalid = np.isnan(decoded) if decoded.dtype.kind == "f" else decoded < 0
            if decoded.dtype.kind == "f":  # an unparseable value scores as the range's midpoint
                decoded = np.where(invalid, float(candidate_values(self.task).mean()), decoded)
            exact = scores.evaluate(self.task, decoded, labels)
            result.update({f"exact_match_{k}": v for k, v in exact.items()})
            result["exact_match_invalid_fraction"] = float(invalid.mean())
        return result


def make_session(shape: shapes.Shape, vocabulary: seqio.Vocabulary, task_name: str,
                 config: ml_collections.ConfigDict) -> Session:
    """Reads and encodes the task, builds the model graph (with the finetuning dropout) and its shardings."""
    task = downstream.get_task(task_name)
    shape = task_shape(shape, config.dropout_rate)
    encode = t5_features if shape.is_encoder_decoder else bert_features
    splits = {}
    for split, limit in (("train", config.max_train_examples), (config.eval_split, config.max_eval_examples)):
        examples = downstream.load(task_name, split, data_dir=config.data_dir)
        splits[split] = encode(task, examples.subset(limit) if limit else examples, vocabulary, config.inputs_length)
    mesh = parallel.make_mesh(config.parallel)
    abstract = build_model(shape, task, abstract=True)
    graphdef, abstract_params = nnx.split(abstract)
    shardings, _ = parallel.param_shardings(abstract_params, mesh, parallel.rules_from_config(config.parallel))
    tx = optim.make_optimizer(config.optimizer)
    opt_shardings = parallel.derived_shardings(jax.eval_shape(tx.init, abstract_params), abstract_params, shardings,
                                               mesh)
    return Session(task, shape, vocabulary, graphdef, splits["train"], splits[config.eval_split], config, mesh,
                   shardings, opt_shardings, tx)


def initial_params(session: Session, backbone: Backbone, seed: int) -> nnx.State:
    """The pretrained weights, plus (BERT) a head initialised from `seed` in place of the MLM head."""
    if session.encoder_decoder:
        return backbone.params
    fresh = nnx.split(build_model(session.shape, session.task, seed=seed))[1]
    pretrained = nnx.State({k: v for k, v in backbone.params.items() if k in fresh["backbone"]})
    return nnx.merge_state(fresh, nnx.State({"backbone": pretrained}))


# -------------------------------------------------------------------------------------------------- run

def run(config: ml_collections.ConfigDict, workdir: str | Path,
        print_fn: Callable[[str], None] = print) -> dict[str, Any]:
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
            start = time.perf_counter()
            params, steps = session.train(initial_params(session, backbone, seed), seed=seed)
            seconds = time.perf_counter() - start
            result = session.evaluate(params)
            row = {"model": backbone.shape.name, "task": task_name, "seed": seed, "split": config.eval_split,
                   "score": result["score"], "metrics": result,
                   "train_examples": len(session.train_features["labels"]),
                   "eval_examples": len(session.eval_features["labels"]), "steps": steps, "seconds": seconds}
            out.mkdir(parents=True, exist_ok=True)
            if config.save_params:
                save_finetuned(out, session.shape, task_name, jax.device_get(params), backbone.vocabulary,
                               {"backbone": backbone.source, "config": json.loads(config.to_json_best_effort())})
            _write_json(out / RESULT_FILE, row)  # last: its presence means this (task, seed) is complete
            rows.append(row)
            print_fn(f"{task_name} seed {seed}: score {result['score']:.4f} after {steps} steps ({seconds:.0f} s)")
    return summarize(rows, workdir, print_fn)


def summarize(rows: list[dict[str, Any]], workdir: Path, print_fn: Callable[[str], None] = print) -> dict[str, Any]:
    """Medians over seeds per task and metric, the aggregate of the median scores; CSV and JSON on disk."""
    import csv

    with open(workdir / "finetune.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "metrics": json.dumps(row["metrics"], sort_keys=True)})
    per_task: dict[str, Any] = {}
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        metric_names = mine[0]["metrics"].keys()
        per_task[name] = {"seeds": [r["seed"] for r in mine],
                       "median": {m: statistics.median(r["metrics"][m] for r in mine) for m in metric_names}}
    summary = {"model": rows[0]["model"] if rows else None, "tasks": per_task,
               "aggregate": scores.aggregate({n: t["median"]["score"] for n, t in per_task.items()})}
    _write_json(workdir / "results.json", summary)
    for name, t in per_task.items():
        print_fn(f"{name}: median score {t['median']['score']:.4f} over seeds {t['seeds']}")
    print_fn(f"aggregate: {summary['aggregate']:.4f}")
    return summary


def main(argv: list[str]) -> int:
    from absl import flags

    from scaling import cli

    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    cli.start(argv, "give both --config=configs/finetune.py and --workdir=DIR", config, workdir)
    try:
        run(config, workdir)
    except (FinetuneError, checkpoints.CheckpointError, downstream.DownstreamDataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # flags are defined here, not on import: scaling.train defines the same names
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "finetuning file, e.g. configs/finetune.py")
    flags.DEFINE_string("workdir", None, "where results and finetuned models go")
    app.run(main)
