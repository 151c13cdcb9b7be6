"""Training: state, sharded steps and the loop that spends a budget.

Data flow: config → shape → model; task → micro-batches; (model, micro-batches, budget) → the loop →
`metrics.jsonl`, TensorBoard, `summary.json` and orbax checkpoints in the workdir.

One optimizer step accumulates `batch_size / micro_batch_size` micro-batches (fewer while Cramming's batch
ramp is on): a jitted micro-step adds each micro-batch's summed gradients into a donated accumulator, and
a jitted update divides by the global target weight and applies the optimizer — so k micro-batches give the
same update as one batch of k× the rows. Parameters and optimizer state are placed by the logical-axis
rules of `scaling.parallel`; batches are sharded over (`data`, `fsdp`). Both steps are compiled ahead of
time, so compilation is measured apart from the step time that wall-clock budgets spend.

A run is resumable at any step: the checkpoint holds parameters, optimizer state (with its learning rate),
what the budget has spent and how many micro-batches were read; dropout keys derive from (seed, step).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from scaling import accounting, models, optim, parallel, shapes
from scaling import budget as budget_lib
from scaling.errors import Preempted, ScalingError, UserError
from scaling.models import layers
from scaling.training import artifact, checkpoints, lock, machine, metrics

NAN_POLICIES = ("stop", "skip")
REMAT = layers.REMAT  # none | full | dots | dots_saveable
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ConfigError(UserError):
    """A config value that cannot train; raised before anything is compiled."""


class NonFiniteLossError(ScalingError, FloatingPointError):
    """The loss or gradient norm stopped being finite under `nan_policy='stop'`."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a run reads; experiment files in `configs/` start from this and change what differs."""
    placeholder = ml_collections.config_dict.placeholder
    return ml_collections.ConfigDict(
        {
            "seed": 0,
            "init_from": placeholder(
                str
            ),  # a converted checkpoint (python -m scaling.convert) to start a fresh run from
            "model": {
                "name": "small",  # any shape name: small-nl24, NL32-XL, crammed-bert …
                "vocab_size": placeholder(int),  # None: the data vocabulary's size rounded up to a multiple of 128
                "dropout_rate": placeholder(float),  # None: the shape's own rate
                "switches": "",  # architecture switches, e.g. "norm_position=post,linear_bias=true"
                "dtype": "auto",  # compute dtype: auto = bfloat16 on accelerators, float32 on CPU
                "remat": "none",  # none | full | dots | dots_saveable (rematerialise scanned layers)
                "attention_impl": "einsum",  # einsum | xla | cudnn (jax.nn.dot_product_attention; GPU, bf16)
            },
            "data": {
                "task": "c4_span_corruption",
                "inputs_length": 512,
                "targets_length": 114,  # span corruption only; ignored by MLM tasks
                "pack": True,
                "eval_split": "validation",
                "eval_batches": 10,  # micro-batches per evaluation
            },
            "batch_size": 128,  # global examples per optimizer step
            "micro_batch_size": placeholder(int),  # global examples per accumulation step; None = batch_size
            "z_loss": 0.0,
            "nan_policy": "stop",  # stop | skip (drop the update and go on)
            "max_consecutive_skips": 20,  # nan_policy=skip: this many skipped steps in a row stop the run (0: never)
            "resume": {"allow_changes": ""},  # trajectory fields a resume may change: "batch_size,seed" or "all"
            "log_every_steps": 50,
            "eval_every_steps": 1000,  # 0: evaluate only at the end
            "optimizer": optim.default_config(),
            "budget": budget_lib.default_config(),
            "parallel": parallel.default_config(),
            "checkpoint": checkpoints.default_config(),
        }
    )


# ------------------------------------------------------------------------------------------ validation


def validate(config: ml_collections.ConfigDict, *, data: bool = True) -> None:
    """Field-by-field checks that need no devices; each error names the field and the fix. `data=False` skips the
    pretraining data task, which runs that bring their own batches (finetuning) do not read."""

    def fail(field: str, why: str) -> None:
        raise ConfigError(f"config.{field} {why}")

    positive = {
        "batch_size": config.batch_size,
        "log_every_steps": config.log_every_steps,
        "data.inputs_length": config.data.inputs_length,
        "data.eval_batches": config.data.eval_batches,
    }
    for field, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            fail(field, f"= {value!r}: use a positive integer")
    micro = config.micro_batch_size or config.batch_size
    if micro <= 0 or config.batch_size % micro:
        fail("micro_batch_size", f"= {micro} must divide batch_size = {config.batch_size}")
    if config.eval_every_steps < 0:
        fail("eval_every_steps", f"= {config.eval_every_steps}: use 0 (only at the end) or a positive integer")
    if config.nan_policy not in NAN_POLICIES:
        fail("nan_policy", f"= {config.nan_policy!r}: use one of {NAN_POLICIES}")
    skips = config.max_consecutive_skips
    if not isinstance(skips, int) or isinstance(skips, bool) or skips < 0:
        fail("max_consecutive_skips", f"= {skips!r}: use 0 (never stop) or a positive integer")
    if config.model.remat not in REMAT:
        fail("model.remat", f"= {config.model.remat!r}: use one of {REMAT}")
    if config.model.attention_impl not in layers.ATTENTION_IMPLS:
        fail("model.attention_impl", f"= {config.model.attention_impl!r}: use one of {layers.ATTENTION_IMPLS}")
    if config.model.dtype not in (*DTYPES, "auto"):
        fail("model.dtype", f"= {config.model.dtype!r}: use one of {(*DTYPES, 'auto')}")
    if config.z_loss < 0:
        fail("z_loss", f"= {config.z_loss}: use a value >= 0 (t5x uses 1e-4)")
    try:
        shapes.parse(config.model.name)
    except shapes.ShapeError as e:
        fail("model.name", f"is not a valid shape: {e}")
    try:
        shapes.parse(config.model.name, **shapes.parse_switches(config.model.get("switches", "")))
    except shapes.ShapeError as e:
        fail("model.switches", f"= {config.model.switches!r}: {e}")
    from scaling.data import tasks

    try:
        if data:
            tasks.task_spec(config.data.task)
    except UserError as e:
        fail("data.task", f"= {config.data.task!r}: {e}")
    try:  # their messages start with the field: budget.amount=…, optimizer.learning_rate=…
        budget_lib.Budget.from_config(config.budget)
        optim.make_schedule(config.optimizer)
        optim.make_optimizer(config.optimizer)
        optim.microbatches_at(0.0, config.batch_size // micro, config.optimizer.batch_ramp_fraction)
    except UserError as e:
        raise ConfigError(f"config.{e}") from None


# --------------------------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything derived from the config before the first step: shape, mesh, shardings, compiled costs."""

    config: ml_collections.ConfigDict
    shape: shapes.Shape
    sequence: accounting.SequenceLengths
    feature_lengths: dict[str, int]
    mesh: Mesh
    rules: tuple
    graphdef: nnx.GraphDef
    param_shardings: Any
    opt_shardings: Any
    tx: optax.GradientTransformation
    schedule: optim.Schedule
    budget: budget_lib.Budget
    micro_batch_size: int
    dtype: Any
    build_model: Callable[[nnx.Rngs], nnx.Module]  # the run's model with fresh parameters from `rngs`
    masked: bool = False  # the state carries pruning masks, applied after every update

    @property
    def full_microbatches(self) -> int:
        return self.config.batch_size // self.micro_batch_size

    @property
    def flops_per_example(self) -> float:
        return accounting.flops_per_token(self.shape, self.sequence).train_per_example

    @property
    def state_shardings(self) -> dict[str, Any]:
        shardings = {"params": self.param_shardings, "opt_state": self.opt_shardings}
        return shardings | {"masks": self.param_shardings} if self.masked else shardings


def resolve_shape(config: ml_collections.ConfigDict) -> shapes.Shape:
    """The shape a config trains: `config.model.name` with its vocabulary size and dropout rate resolved."""
    try:
        return artifact.shape_from_training_config(config)
    except shapes.ShapeError as e:
        raise ConfigError(str(e)) from None


def build_run(config: ml_collections.ConfigDict, devices: list | None = None) -> Run:
    """Resolves the config into a Run, failing on incompatible mesh, shape and batch sizes."""
    validate(config)
    from scaling.data import tasks

    spec = tasks.task_spec(config.data.task)
    tasks.check_splits(config.data.task, ("train", config.data.eval_split))  # before any step, not at the first eval
    shape = resolve_shape(config)
    mlm = spec.objective == "mlm"
    if mlm == shape.is_encoder_decoder:
        raise ConfigError(
            f"config.data.task = {config.data.task!r} ({spec.objective}) does not fit "
            f"config.model.name = {shape.name!r} ({shape.family}); use a *_span_corruption task "
            f"for T5 shapes and a *_mlm task for BERT shapes"
        )
    inputs = config.data.inputs_length
    if mlm:
        if inputs > shape.max_length and shape.position_embedding == "learned":
            raise ConfigError(
                f"config.data.inputs_length = {inputs} exceeds {shape.name}'s max_length {shape.max_length}"
            )
        feature_lengths = {"inputs": inputs}
        sequence = accounting.SequenceLengths.default_for(shape, inputs, mask_rate=spec.mask_rate)
    else:
        feature_lengths = {"inputs": inputs, "targets": config.data.targets_length}
        sequence = accounting.SequenceLengths(inputs, config.data.targets_length)
    return make_run(config, shape, sequence, feature_lengths, devices=devices)


ModelBuilder = Callable[..., nnx.Module]  # (shape, *, rngs, dtype, remat) → module, like `models.build`


def make_run(
    config: ml_collections.ConfigDict,
    shape: shapes.Shape,
    sequence: accounting.SequenceLengths,
    feature_lengths: dict[str, int],
    *,
    devices: list | None = None,
    build_model: ModelBuilder = models.build,
    masked: bool = False,
) -> Run:
    """The Run of any model the trainer can train: pretraining (:func:`build_run`), finetuning with a task head
    and pruning recovery (`masked`) all get the same mesh, shardings and optimizer construction from here.

    `build_model` must return a module with `loss(batch, dropout_rng=, z_loss=)` giving summed loss and the
    `loss_sum`, `z_loss_sum`, `weight_sum`, `correct_sum` aux sums, as `models.T5` and `models.Bert` do.
    """
    validate(config, data=False)
    mesh = parallel.make_mesh(config.parallel, devices)
    rules = parallel.rules_from_config(config.parallel)
    micro = config.micro_batch_size or config.batch_size
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    if micro % batch_shards:
        raise ConfigError(
            f"config.micro_batch_size = {micro} is not divisible by the {batch_shards} batch shards "
            f"of the mesh (data {mesh.shape['data']} × fsdp {mesh.shape['fsdp']}); change the batch "
            f"or config.parallel"
        )
    if micro % jax.process_count():
        raise ConfigError(f"config.micro_batch_size = {micro} is not divisible by the {jax.process_count()} processes")

    dtype = DTYPES.get(config.model.dtype) or (jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16)
    remat, attention = config.model.remat, config.model.attention_impl

    def build(rngs: nnx.Rngs) -> nnx.Module:
        return layers.use_attention(build_model(shape, rngs=rngs, dtype=dtype, remat=remat), attention)

    graphdef, abstract_params = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))))
    param_shardings, fallbacks = parallel.param_shardings(abstract_params, mesh, rules)
    if fallbacks:
        logging.info("replicated instead of sharded: %s", sorted(fallbacks))
    tx = optim.make_optimizer(config.optimizer, nnx.get_partition_spec(abstract_params))
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_shardings = parallel.derived_shardings(abstract_opt, abstract_params, param_shardings, mesh)
    return Run(
        config=config,
        shape=shape,
        sequence=sequence,
        feature_lengths=feature_lengths,
        mesh=mesh,
        rules=rules,
        graphdef=graphdef,
        param_shardings=param_shardings,
        opt_shardings=opt_shardings,
        tx=tx,
        schedule=optim.make_schedule(config.optimizer),
        budget=budget_lib.Budget.from_config(config.budget),
        micro_batch_size=micro,
        dtype=dtype,
        build_model=build,
        masked=masked,
    )


# ----------------------------------------------------------------------------------------------- steps


def init_state(run: Run, params: nnx.State | None = None, masks: Any = None) -> dict[str, Any]:
    """Parameters (given, or random and created directly in their shardings, never whole on one device), then
    optimizer state; a masked run also carries its pruning masks (all ones unless given)."""

    def make_params(key: jax.Array) -> nnx.State:
        return nnx.split(run.build_model(nnx.Rngs(params=key)))[1]

    if params is None:
        params = jax.jit(make_params, out_shardings=run.param_shardings)(jax.random.key(run.config.seed))
    else:
        params = jax.device_put(params, run.param_shardings, may_alias=False)  # the caller's copy survives donation
    opt_state = jax.jit(run.tx.init, out_shardings=run.opt_shardings)(params)
    state = {"params": params, "opt_state": opt_state}
    if run.masked:
        if masks is None:
            masks = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
        state["masks"] = jax.device_put(jax.tree.map(lambda m: jnp.asarray(m, bool), masks), run.param_shardings)
    elif masks is not None:
        raise ValueError("masks given to a run without masked=True")
    return state


def imported_params(run: Run) -> nnx.State:
    """The parameters of the model `config.init_from` (any kind: artifact, training workdir, finetuned or pruned
    model; a finetuned BERT gives its backbone), restored into the run's shardings."""
    path = run.config.init_from
    saved = artifact.load_shape(path)
    differ = {
        f.name: (getattr(saved, f.name), getattr(run.shape, f.name))
        for f in dataclasses.fields(saved)
        if f.name not in ("preset", "dropout_rate") and getattr(saved, f.name) != getattr(run.shape, f.name)
    }
    if differ:
        fields = ", ".join(f"{k} (saved {a}, configured {b})" for k, (a, b) in differ.items())
        raise ConfigError(
            f"config.init_from = {path!r} holds shape {saved.name}, which differs from config.model's "
            f"{run.shape.name} in {fields}; set config.model.name / vocab_size / switches to match"
        )
    abstract = jax.eval_shape(lambda: init_state(run))["params"]
    return artifact.load(path, abstract_params=checkpoints.abstract_like(abstract, run.param_shardings)).params


def _loss_fn(graphdef: nnx.GraphDef, z_loss: float) -> Callable:
    def loss(params, batch, key):
        return nnx.merge(graphdef, params).loss(batch, dropout_rng=key, z_loss=z_loss)

    return loss


def _grad_fn(run: Run) -> Callable:
    """(params, batch, key) → (summed gradients, aux sums) of one micro-batch."""
    grad = jax.grad(_loss_fn(run.graphdef, run.config.z_loss), has_aux=True)
    dropout = run.shape.dropout_rate > 0
    return lambda params, batch, key: grad(params, batch, key if dropout else None)


def micro_step_fn(run: Run) -> Callable:
    """(params, grads_acc, aux_acc, batch, key) → accumulators plus this micro-batch's summed gradients."""
    grad = _grad_fn(run)

    def step(params, grads_acc, aux_acc, batch, key):
        grads, aux = grad(params, batch, key)
        add = lambda a, b: a + b
        return jax.tree.map(add, grads_acc, grads), jax.tree.map(add, aux_acc, aux)

    return step


def fused_step_fn(run: Run) -> Callable:
    """(params, opt_state, batch, key, lr) → the update of a one-micro-batch step in a single program.

    Without accumulation there is nothing to carry between micro-batches, so gradients never leave the
    program: no zeroed accumulator, no sum, no second dispatch, and XLA fuses the update into the backward pass.
    """
    grad, update = _grad_fn(run), update_fn(run)
    return lambda params, opt_state, batch, key, lr, masks=None: update(
        params, opt_state, *grad(params, batch, key), lr, masks
    )


def update_fn(run: Run) -> Callable:
    """(params, opt_state, grads_sum, aux_sum, lr[, masks]) → new state and step metrics; a non-finite step changes
    nothing; with `masks` (a masked run's pruning masks) the updated parameters are multiplied by them.

    The skip is a `lax.cond`, not a select of new against old: a select reads both states again after the update,
    which made the update program alone 1.7× slower (T5-small AdamW on CPU: 0.34 against 0.20 s; README, Benchmarks).
    """

    def apply(params, opt_state, grads, weight, masks):
        updates, new_opt_state = run.tx.update(jax.tree.map(lambda g: g / weight, grads), opt_state, params)
        params = optax.apply_updates(params, updates)
        if masks is not None:  # the pruning hook: pruned weights stay zero through recovery finetuning
            params = jax.tree.map(lambda p, m: p * m.astype(p.dtype), params, masks)
        return params, new_opt_state

    def keep(params, opt_state, grads, weight, masks):
        return params, opt_state

    def update(params, opt_state, grads, aux, lr, masks=None):
        weight = jnp.maximum(aux["weight_sum"], 1.0)
        loss = aux["loss_sum"] / weight
        grad_norm = optax.tree.norm(grads) / weight
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(aux["z_loss_sum"])
        opt_state = optim.set_learning_rate(opt_state, lr)
        params, opt_state = jax.lax.cond(ok, apply, keep, params, opt_state, grads, weight, masks)
        metrics_ = {
            "loss": loss,
            "accuracy": aux["correct_sum"] / weight,
            "z_loss": aux["z_loss_sum"] / weight,
            "grad_norm": grad_norm,
            "weight": aux["weight_sum"],
            "ok": ok,
        }
        return params, opt_state, metrics_

    return update


def eval_fn(run: Run) -> Callable:
    loss = _loss_fn(run.graphdef, 0.0)
    return lambda params, batch: loss(params, batch, None)[1]


def zero_accumulators(run: Run) -> Callable:
    aux_zeros = {k: jnp.zeros((), jnp.float32) for k in ("loss_sum", "z_loss_sum", "weight_sum", "correct_sum")}
    return jax.jit(
        lambda params: (jax.tree.map(jnp.zeros_like, params), aux_zeros), out_shardings=(run.param_shardings, None)
    )


@dataclasses.dataclass
class Compiled:
    """The ahead-of-time compiled steps and how long compiling took.

    With one micro-batch per step (`batch_size == micro_batch_size`, no batch ramp) only `fused` exists;
    otherwise `zeros`, `micro_step` and `update` chain the accumulation. :meth:`step` runs either.
    """

    micro_step: Any
    update: Any
    zeros: Any
    fused: Any
    seconds: float

    @property
    def executables(self) -> list[Any]:
        return [e for e in (self.fused, self.micro_step, self.update) if e is not None]

    def step(
        self, state: dict[str, Any], micro_batches: list[dict[str, jax.Array]], key: jax.Array, lr: jax.typing.ArrayLike
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        """One optimizer step over `micro_batches`; micro-batch m's dropout key is `fold_in(key, m)`."""
        lr = jnp.float32(lr)
        masks = (state["masks"],) if "masks" in state else ()
        if self.fused is not None:
            (batch,) = micro_batches
            params, opt_state, step_metrics = self.fused(
                state["params"], state["opt_state"], batch, jax.random.fold_in(key, 0), lr, *masks
            )
        else:
            grads, aux = self.zeros(state["params"])
            for m, batch in enumerate(micro_batches):
                grads, aux = self.micro_step(state["params"], grads, aux, batch, jax.random.fold_in(key, m))
            params, opt_state, step_metrics = self.update(state["params"], state["opt_state"], grads, aux, lr, *masks)
        return {**state, "params": params, "opt_state": opt_state}, step_metrics


def compile_steps(run: Run, state: dict[str, Any], batch: dict[str, jax.Array]) -> Compiled:
    # Creating the state is dispatched asynchronously; left running, it shares the cores with the compiler and
    # bills its own (depth-proportional) time as compile time.
    jax.block_until_ready((state, batch))
    start = time.perf_counter()
    replicated = NamedSharding(run.mesh, PartitionSpec())
    key, lr = jax.random.key(0), jnp.float32(0)
    masks = (state["masks"],) if "masks" in state else ()
    step_outputs = (run.param_shardings, run.opt_shardings, replicated)
    if run.full_microbatches == 1:
        fused = jax.jit(fused_step_fn(run), donate_argnums=(0, 1), out_shardings=step_outputs)
        fused = fused.lower(state["params"], state["opt_state"], batch, key, lr, *masks).compile()
        return Compiled(None, None, None, fused, time.perf_counter() - start)
    zeros = zero_accumulators(run).lower(state["params"]).compile()
    grads0, aux0 = zeros(state["params"])
    micro = jax.jit(micro_step_fn(run), donate_argnums=(1, 2), out_shardings=(run.param_shardings, replicated))
    micro = micro.lower(state["params"], grads0, aux0, batch, key).compile()
    update = jax.jit(update_fn(run), donate_argnums=(0, 1), out_shardings=step_outputs)
    update = update.lower(state["params"], state["opt_state"], grads0, aux0, lr, *masks).compile()
    return Compiled(micro, update, zeros, None, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------- jobs


@dataclasses.dataclass(frozen=True)
class Job:
    """What the loop trains besides the Run's step: where batches come from, how a fresh run starts, how it is
    evaluated, and when it may stop before its budget. Pretraining, finetuning and pruning recovery are Jobs."""

    run: Run
    train_batches: Callable[[int], Iterator[dict[str, jax.Array]]]  # global micro-batches from a position on
    initial_state: Callable[[], dict[str, Any]]  # a fresh run's state (random, pretrained, pruned …)
    evaluate: Callable[[Any], dict[str, float]]  # params → `eval_*` metrics, at `eval_every_steps` and the end
    stop_early: Callable[[Any], bool] | None = None  # params → done before the budget (asked every `check_every`)
    check_every: int = 0
    describe: Callable[[Path], None] | None = None  # makes the workdir a model artifact, once the data reads
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra summary.json fields


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What :func:`fit` leaves: the final logged metrics (as in `summary.json`) and the final state."""

    metrics: dict[str, Any]
    state: dict[str, Any]


def batches(run: Run, split: str, start: int, repeat: bool = True) -> Iterator[dict[str, jax.Array]]:
    """Global micro-batches of `split` from micro-batch `start` on, sharded over the mesh's batch axes."""
    from scaling.data import pipeline

    local = pipeline.get_batches(
        run.config.data.task,
        split=split,
        feature_lengths=run.feature_lengths,
        batch_size=run.micro_batch_size,
        seed=run.config.seed,
        start_step=start,
        pack=run.config.data.pack,
        repeat=repeat,
    )
    return (pipeline.make_global_batch(b, run.mesh) for b in local)


def loss_evaluator(run: Run, eval_batches: Callable[[], Iterator[dict[str, jax.Array]]]) -> Callable[[Any], dict]:
    """params → `eval_loss` and `eval_accuracy` over the batches `eval_batches()` yields (read and compiled once)."""
    cache: dict[str, Any] = {}

    def evaluate(params: Any) -> dict[str, float]:
        if not cache:
            cache["batches"] = list(eval_batches())
            cache["step"] = jax.jit(eval_fn(run)).lower(params, cache["batches"][0]).compile()
        totals: dict[str, float] = {}
        for batch in cache["batches"]:
            for k, v in jax.device_get(cache["step"](params, batch)).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        weight = max(totals["weight_sum"], 1.0)
        return {"eval_loss": totals["loss_sum"] / weight, "eval_accuracy": totals["correct_sum"] / weight}

    return evaluate


def pretraining_job(run: Run) -> Job:
    """Pretraining on the config's data task: random (or `init_from`) parameters, evaluation loss on its split."""
    config = run.config
    eval_batches = lambda: _take(batches(run, config.data.eval_split, 0), config.data.eval_batches)

    def describe(workdir: Path) -> None:
        from scaling.data import tasks

        artifact.describe_workdir(
            workdir,
            shape=run.shape,
            vocabulary=tasks.vocabulary(config.data.task),
            provenance={"kind": "train", "source": config.init_from or config.data.task},
        )

    return Job(
        run=run,
        train_batches=lambda position: batches(run, "train", position),
        initial_state=lambda: init_state(run, imported_params(run) if config.init_from else None),
        evaluate=loss_evaluator(run, eval_batches),
        describe=describe,
    )


# ------------------------------------------------------------------------------------------------ loop


def describe(run: Run) -> str:
    """The start-up report: shape, costs, mesh and devices (the config itself is in `config.json` and TensorBoard's
    hparams, not on the console)."""
    counts = accounting.param_counts(run.shape)
    devices = jax.devices()
    lines = [
        f"shape {run.shape.name}: {counts.total:,} parameters ({counts.non_embedding:,} non-embedding), "
        f"sequence {run.sequence.inputs}/{run.sequence.targets}",
        f"FLOPs per step (train, matmul convention): {run.flops_per_example * run.config.batch_size:.4g} "
        f"({run.config.batch_size} examples, {run.full_microbatches} micro-batch(es) of {run.micro_batch_size})",
        f"mesh {dict(run.mesh.shape)} over {len(devices)} {devices[0].device_kind} device(s) in "
        f"{jax.process_count()} process(es); compute dtype {jnp.dtype(run.dtype).name}; budget "
        f"{run.budget.amount:g} {run.budget.unit}",
    ]
    return "\n".join(lines)


def train(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    stop_after_steps: int | None = None,
    devices: list | None = None,
    print_fn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Pretrains until the budget is spent (or a preemption, or `stop_after_steps` steps in this call).

    Resumes from the latest checkpoint in `workdir/checkpoints`. Returns the final metrics (also written to
    `workdir/summary.json`); a preemption raises :class:`scaling.errors.Preempted` after its checkpoint is saved.
    """
    run = build_run(config, devices)
    return fit(pretraining_job(run), workdir, stop_after_steps=stop_after_steps, print_fn=print_fn).metrics


# Config fields that decide a run's trajectory: a resume that changes one would silently continue a different
# experiment (the data position counts micro-batches, the optimizer state has the old shapes, …).
TRAJECTORY_FIELDS = ("model", "data", "batch_size", "micro_batch_size", "optimizer", "seed", "z_loss")
# Fields inside those that do not change what is trained.
NOT_TRAJECTORY = ("model.remat", "model.attention_impl", "data.eval_split", "data.eval_batches")


def config_changes(saved: dict[str, Any], config: ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
    """(field, saved value, new value) for each trajectory field the new config changes."""
    old = metrics.flatten(saved)
    new = metrics.flatten(json.loads(config.to_json_best_effort()))
    fields = sorted(
        f
        for f in set(old) | set(new)
        if f.split(".")[0] in TRAJECTORY_FIELDS and not f.startswith(NOT_TRAJECTORY) and old.get(f) != new.get(f)
    )
    return [(f, old.get(f), new.get(f)) for f in fields]


def _check_resume(config: ml_collections.ConfigDict, ckpt: checkpoints.Checkpointer) -> list[dict[str, Any]]:
    """Refuses to resume the newest checkpoint with a config that changes the run's trajectory, unless the user
    allowed those fields (`resume.allow_changes`); returns every allowed change so far (to keep and report)."""
    saved = ckpt.metadata()
    if saved is None or "config" not in saved:
        return []
    history = list(saved.get("resume_changes", []))
    changes = config_changes(saved["config"], config)
    allowed = {f.strip() for f in str(config.resume.allow_changes).split(",") if f.strip()}
    refused = [c for c in changes if "all" not in allowed and c[0] not in allowed]
    if refused:
        listed = "\n".join(f"  {field}: {old!r} → {new!r}" for field, old, new in refused[:12])
        more = f"\n  … and {len(refused) - 12} more" if len(refused) > 12 else ""
        raise ConfigError(
            f"{ckpt.directory} was trained with another config; resuming would change its trajectory:\n{listed}{more}\n"
            f"Rerun with the original values, use a new --workdir, or allow the change with "
            f"--config.resume.allow_changes={','.join(c[0] for c in refused)} (recorded in summary.json)."
        )
    step = saved.get("spent", {}).get("step")
    for field, old, new in changes:
        logging.warning("resuming step %s with %s changed from %r to %r (allowed)", step, field, old, new)
        history.append({"step": step, "field": field, "old": old, "new": new})
    return history


def fit(
    job: Job, workdir: str | Path, *, stop_after_steps: int | None = None, print_fn: Callable[[str], None] = print
) -> Fitted:
    """Runs `job` in `workdir` until its budget is spent, it stops early, it is preempted, or `stop_after_steps`
    steps were taken in this call; resumes from the newest checkpoint there. Every Job goes through here: one
    step, one non-finite policy, one budget, one metrics writer, one checkpoint layout, one exact resume.

    The workdir is locked for the run (a second live run there is refused); a resume whose config changes the
    trajectory is refused before anything is read; a preemption raises :class:`scaling.errors.Preempted` once
    its checkpoint is saved."""
    workdir = Path(workdir)
    run = job.run
    with contextlib.ExitStack() as cleanup:
        held = cleanup.enter_context(lock.WorkdirLock(workdir)) if jax.process_index() == 0 else None
        cleanup.enter_context(machine.registered("train", workdir))
        monitor = cleanup.enter_context(machine.Monitor())
        ckpt = cleanup.enter_context(
            checkpoints.Checkpointer.from_config(workdir / "checkpoints", run.config.checkpoint)
        )
        resume_changes = _check_resume(run.config, ckpt)
        if jax.process_index() == 0:
            (workdir / "config.json").write_text(run.config.to_json_best_effort(indent=2) + "\n")
            print_fn(describe(run))
        return _loop(job, workdir, ckpt, cleanup, held, monitor, resume_changes, stop_after_steps, print_fn)


class _Watchdog:
    """Warns (once each) about a run that trains without learning: a gradient norm of 0 for `patience` steps in a
    row, or a loss that has not moved from its first logged value after `patience` steps (a learning rate far
    too high or too low, a frozen model, a constant batch). It warns; the budget still decides when to stop."""

    def __init__(self, patience: int):
        self.patience, self.zero_steps, self.first_loss, self.warned = patience, 0, None, set()

    def step(self, step: int, grad_norm: float) -> str | None:
        self.zero_steps = self.zero_steps + 1 if grad_norm == 0 else 0
        if self.zero_steps >= self.patience and "grad" not in self.warned:
            self.warned.add("grad")
            return (
                f"the gradient norm has been 0 for {self.zero_steps} steps (step {step}): nothing is learning. "
                f"A learning rate far too high saturates the model (check optimizer.learning_rate)"
            )
        return None

    def logged(self, step: int, loss: float) -> str | None:
        if not math.isfinite(loss):
            return None
        if self.first_loss is None:
            self.first_loss, self.first_step = loss, step
            return None
        still = abs(loss - self.first_loss) <= 1e-3 * max(abs(self.first_loss), 1.0)
        if still and step - self.first_step >= self.patience and "loss" not in self.warned:
            self.warned.add("loss")
            return (
                f"the loss has not moved from {self.first_loss:.4f} in {step - self.first_step} steps: check "
                f"optimizer.learning_rate and the data"
            )
        return None


def _loop(
    job: Job,
    workdir: Path,
    ckpt: checkpoints.Checkpointer,
    cleanup: contextlib.ExitStack,
    held: lock.WorkdirLock | None,
    monitor: machine.Monitor,
    resume_changes: list[dict[str, Any]],
    stop_after_steps: int | None,
    print_fn: Callable[[str], None],
) -> Fitted:
    run = job.run
    config = run.config
    spent, position, skipped, stopped_early, state = budget_lib.Spent(), 0, 0, False, None
    if ckpt.latest_step() is not None:
        restored = ckpt.restore(checkpoints.abstract_like(jax.eval_shape(lambda: init_state(run)), run.state_shardings))
        state = restored.state
        spent = budget_lib.Spent.from_dict(restored.metadata["spent"])
        position, skipped = restored.metadata["data_position"], restored.metadata.get("skipped_steps", 0)
        stopped_early = restored.metadata.get("stopped_early", False)
        print_fn(f"resumed from step {spent.step} ({position} micro-batches read)")
    first_step = spent.step
    hparams = metrics.flatten(json.loads(config.to_json_best_effort()))
    writer = metrics.create_writer(workdir, resume_step=spent.step or None, hparams=hparams)
    cleanup.callback(writer.close)
    last: dict[str, Any] = {}
    watchdog = _Watchdog(patience=max(10, config.log_every_steps))
    warnings: list[str] = []

    def metadata() -> dict[str, Any]:
        return {
            "spent": spent.as_dict(),
            "data_position": position,
            "skipped_steps": skipped,
            "stopped_early": stopped_early,
            "shape": run.shape.name,
            "config": json.loads(config.to_json_best_effort()),
            "resume_changes": resume_changes,
        }

    def finished() -> bool:
        return stopped_early or run.budget.done(spent)

    def warn(message: str | None) -> None:
        if message:
            logging.warning("%s", message)
            warnings.append(message)

    compile_seconds = 0.0
    if not finished():
        train_batches = job.train_batches(position)  # a missing dataset fails here, before any parameter exists
        pending = [next(train_batches)]
        if job.describe is not None:
            job.describe(workdir)
        if state is None:
            state = job.initial_state()
            if job.stop_early is not None and job.stop_early(state["params"]):
                stopped_early = True
        if not finished():
            print_fn("compiling the train step …")
            compiled = compile_steps(run, state, pending[0])
            compile_seconds = compiled.seconds
            print_fn(f"compiled in {compile_seconds:.1f} s")
    peak = metrics.peak_flops(jax.devices()[0].device_kind)
    base_key = jax.random.key(config.seed + 1)
    interval: dict[str, float] = {}
    steps_this_call, consecutive_skips, preempted = 0, 0, False
    with checkpoints.PreemptionHandler() as preemption:
        while not finished():
            started = time.perf_counter()
            progress = run.budget.progress(spent)
            n_micro = optim.microbatches_at(progress, run.full_microbatches, config.optimizer.batch_ramp_fraction)
            micro_batches = [pending.pop() if pending else next(train_batches) for _ in range(n_micro)]
            lr = run.schedule(progress, spent.step)
            state, step_metrics = compiled.step(state, micro_batches, jax.random.fold_in(base_key, spent.step), lr)
            step_metrics = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
            position += n_micro
            if not step_metrics["ok"]:
                if config.nan_policy == "stop":
                    raise NonFiniteLossError(
                        f"loss {step_metrics['loss']} / gradient norm {step_metrics['grad_norm']} is not finite at "
                        f"step {spent.step + 1}; the update was not applied. The last good checkpoint is step "
                        f"{ckpt.latest_step()} in {ckpt.directory}. Lower optimizer.learning_rate, add "
                        f"optimizer.grad_clip_norm or z_loss, or set nan_policy='skip' to drop such steps."
                    )
                skipped += 1
                consecutive_skips += 1
                logging.warning("non-finite loss at step %d: update skipped (%d so far)", spent.step + 1, skipped)
                if config.max_consecutive_skips and consecutive_skips >= config.max_consecutive_skips:
                    raise NonFiniteLossError(
                        f"{consecutive_skips} steps in a row (to step {spent.step + 1}) had a non-finite loss or "
                        f"gradient and were skipped: the run has diverged. The last checkpoint is step "
                        f"{ckpt.latest_step()} in {ckpt.directory}. Lower optimizer.learning_rate, add "
                        f"optimizer.grad_clip_norm or z_loss (max_consecutive_skips = {config.max_consecutive_skips})."
                    )
            else:
                consecutive_skips = 0
                warn(watchdog.step(spent.step + 1, step_metrics["grad_norm"]))
            examples = n_micro * run.micro_batch_size
            seconds = budget_lib.agree_across_processes(time.perf_counter() - started)
            spent = spent.advance(
                tokens=examples * run.sequence.tokens, flops=examples * run.flops_per_example, seconds=seconds
            )
            steps_this_call += 1
            weight = step_metrics["weight"] if step_metrics["ok"] else 0.0  # skipped steps do not count
            for k, v in (
                ("loss", step_metrics["loss"] * weight if weight else 0.0),
                ("accuracy", step_metrics["accuracy"] * weight),
                ("weight", weight),
                ("tokens", examples * run.sequence.tokens),
                ("flops", examples * run.flops_per_example),
                ("seconds", seconds),
            ):
                interval[k] = interval.get(k, 0.0) + v
            if job.stop_early is not None and job.check_every and spent.step % job.check_every == 0:
                stopped_early = job.stop_early(state["params"])
            done = finished()
            preempted = preemption.should_stop(spent.step)
            stop = preempted or (stop_after_steps is not None and steps_this_call >= stop_after_steps)
            record: dict[str, Any] = {}
            if spent.step % config.log_every_steps == 0 or done or stop:
                weight = interval["weight"] or math.nan  # an interval of skipped steps has no loss
                record = {
                    "loss": interval["loss"] / weight,
                    "accuracy": interval["accuracy"] / weight,
                    "learning_rate": float(lr),
                    "grad_norm": step_metrics["grad_norm"],
                    "progress": run.budget.progress(spent),
                    "tokens": spent.tokens,
                    "flops": spent.flops,
                    "seconds": spent.seconds,
                    "compile_seconds": compile_seconds,
                    "skipped_steps": skipped,
                    **metrics.rates(
                        interval["tokens"],
                        interval["flops"],
                        interval["seconds"],
                        peak_per_device=peak,
                        num_devices=jax.device_count(),
                    ),
                }
                interval = {}
                warn(watchdog.logged(spent.step, record["loss"]))
                if held is not None:
                    held.refresh()
            if (config.eval_every_steps and spent.step % config.eval_every_steps == 0) or done:
                record.update(job.evaluate(state["params"]))
            if record:
                writer.write_scalars(spent.step, record)
                last.update(record)
                if jax.process_index() == 0:
                    print_fn(metrics.progress_line(spent.step, run.budget.progress(spent), spent.seconds, record))
            ckpt.save(spent.step, state, metadata(), force=done or stop)
            if stop:
                break
    if stopped_early and spent.step == 0 and not ckpt.all_steps():
        ckpt.save(0, state, metadata(), force=True)  # done before any step: the resumed run must know it
    ckpt.wait()
    writer.flush()
    counts = accounting.param_counts(run.shape)
    if jax.process_index() == 0:
        machine.append(workdir, monitor.record(first_step=first_step, last_step=spent.step))
    final = {**last, "step": spent.step, "completed": finished(), "stopped_early": stopped_early}
    metrics.write_summary(
        workdir,
        config=config,
        final_metrics=final,
        extra={
            "shape": dataclasses.asdict(run.shape) | {"name": run.shape.name},
            "params": counts.total,
            "params_non_embedding": counts.non_embedding,
            "flops_per_example_train": run.flops_per_example,
            "flops_per_step_train": run.flops_per_example * config.batch_size,
            "sequence": {"inputs": run.sequence.inputs, "targets": run.sequence.targets},
            "budget": {"unit": run.budget.unit, "amount": run.budget.amount, "spent": spent.as_dict()},
            "mesh": dict(run.mesh.shape),
            "warnings": warnings,
            "resume_changes": resume_changes,
            "machine": machine.verdict(machine.read(workdir)),
            **job.summary,
        },
    )
    if jax.process_index() == 0:
        print_fn(_closing_line(workdir, run, spent, final, preempted))
    if preempted:
        raise Preempted(
            f"preempted at step {spent.step}: checkpoint saved in {ckpt.directory}; rerun the same command to resume"
        )
    return Fitted(final, state)


def _closing_line(workdir: Path, run: Run, spent: budget_lib.Spent, final: dict[str, Any], preempted: bool) -> str:
    """What was spent, the final metrics and where the files are, in one line."""
    how = "preempted" if preempted else "done" if final["completed"] else "stopped"
    results = ", ".join(
        f"{k} {final[k]:.4f}" for k in ("loss", "eval_loss", "eval_score") if isinstance(final.get(k), float)
    )
    return (
        f"{how}: step {spent.step}, {spent.seconds:.0f} s of training, {spent.tokens:,} tokens, {spent.flops:.3g} FLOPs"
        f" ({100 * run.budget.progress(spent):.0f}% of {run.budget.amount:g} {run.budget.unit})"
        + (f"; {results}" if results else "")
        + f"; files in {workdir}"
    )


def _take(iterator: Iterator, n: int) -> Iterator:
    for _, item in zip(range(n), iterator):
        yield item


__all__ = [
    "ConfigError",
    "Fitted",
    "Job",
    "NonFiniteLossError",
    "Run",
    "build_run",
    "default_config",
    "fit",
    "make_run",
    "pretraining_job",
    "resolve_shape",
    "train",
    "validate",
]
