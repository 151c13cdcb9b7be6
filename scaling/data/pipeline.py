"""Batches for the trainer: deterministic, resumable, sharded per host.

    get_batches(task, *, split, feature_lengths, batch_size, seed, start_step=0, pack=True,
                shard_index=None, num_shards=None, repeat=True) -> Iterator[dict[str, np.ndarray]]

yields this process's rows (`batch_size // num_shards` of the GLOBAL `batch_size`) of step `start_step`, then
the next steps. `shard_index`/`num_shards` default to `jax.process_index()`/`jax.process_count()`; each shard
reads a disjoint slice of the source documents (`seqio.ShardInfo`). The same (task, split, lengths, batch
size, seed, shards) always give the same batches, and starting at `start_step=k` gives exactly the batches an
uninterrupted run gives from step k on: the trainer only checkpoints the step. Resuming replays the tf.data
pipeline for k steps (tokenization and corruption are cheap next to a train step, and nothing reaches Python).

Span corruption (feature_lengths {"inputs", "targets"}), seqio `EncDecFeatureConverter`:
    encoder_input_tokens, encoder_segment_ids, encoder_positions                          int32  [B, inputs]
    decoder_target_tokens, decoder_input_tokens, decoder_segment_ids, decoder_positions   int32  [B, targets]
    decoder_loss_weights                                                                  float32 [B, targets]
MLM (feature_lengths {"inputs"}), seqio `EncoderFeatureConverter`, then masking per row:
    encoder_input_tokens (masked), encoder_target_tokens (original), encoder_segment_ids, encoder_positions
                                                                                          int32  [B, L]
    encoder_loss_weights (1.0 exactly on masked positions)                                float32 [B, L]
    mlm_positions (masked positions, sorted, padded with 0)                               int32  [B, K]
    mlm_weights (1.0 on real entries, 0.0 on padding)                                     float32 [B, K]
with K = ceil(mask_rate * L). MLM rows are full (documents joined by EOS), one segment per row: as in Cramming,
documents in a row attend to each other. Span-corruption rows are one T5 example each unless `pack` combines
shorter ones; models must mask attention across `*_segment_ids` (0 is padding).
The MLM mask token is `<extra_id_0>` (`vocab.mask_token_id`); pad 0 and EOS 1 are never masked or drawn.

`task` is any registered seqio task or mixture (`tasks.task_spec` reads its objective from seqio's registry).

`make_global_batch(local, mesh)` assembles the per-process rows into one `jax.Array` per key, sharded over the
batch axes of the mesh.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import jax
import numpy as np
import seqio
import tensorflow as tf
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from scaling.data import objectives, tasks, vocab
from scaling.errors import UserError


def _feature_converter(spec: tasks.TaskSpec, vocabulary: seqio.Vocabulary, pack: bool) -> seqio.FeatureConverter:
    if spec.objective == "span_corruption":
        return seqio.EncDecFeatureConverter(pack=pack)
    return seqio.EncoderFeatureConverter(mask_id=vocab.mask_token_id(vocabulary), pack=pack)


def _task_lengths(spec: tasks.TaskSpec, feature_lengths: Mapping[str, int]) -> dict[str, int]:
    expected = {"inputs", "targets"} if spec.objective == "span_corruption" else {"inputs"}
    if set(feature_lengths) != expected:
        raise ValueError(
            f"Task {spec.name} ({spec.objective}) takes feature_lengths keys {sorted(expected)}, "
            f"got {sorted(feature_lengths)}"
        )
    if spec.objective == "mlm":
        return {"inputs": feature_lengths["inputs"], "targets": feature_lengths["inputs"]}
    return dict(feature_lengths)


def _mask_rows(
    ds: tf.data.Dataset, spec: tasks.TaskSpec, vocabulary: seqio.Vocabulary, seed: int, shard_index: int
) -> tf.data.Dataset:
    """MLM corruption of each row, seeded by (seed, shard, row index) so it is reproducible and resumable."""
    base = tf.constant([seed, shard_index], tf.int64)
    token_range = vocab.regular_token_range(vocabulary)

    def mask(index: tf.Tensor, row: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        seed_pair = tf.random.experimental.stateless_fold_in(base, index)
        masked = objectives.mlm_mask(
            row["encoder_target_tokens"],
            seed_pair,
            mask_rate=spec.mask_rate,
            mask_id=vocab.mask_token_id(vocabulary),
            random_token_range=token_range,
            special_ids=(vocab.PAD_ID, vocab.EOS_ID),
        )
        return {
            **row,
            "encoder_input_tokens": masked["inputs"],
            "encoder_loss_weights": masked["loss_weights"],
            "mlm_positions": masked["positions"],
            "mlm_weights": masked["weights"],
        }

    return ds.enumerate().map(mask, num_parallel_calls=tf.data.AUTOTUNE)


def _cast(row: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {k: tf.cast(v, tf.float32 if k.endswith("weights") else tf.int32) for k, v in row.items()}


def dataset(
    task: str,
    *,
    split: str,
    feature_lengths: Mapping[str, int],
    seed: int,
    pack: bool = True,
    shard_index: int = 0,
    num_shards: int = 1,
    repeat: bool = True,
) -> tf.data.Dataset:
    """The unbatched model-feature rows of one shard (what `get_batches` batches)."""
    spec = tasks.task_spec(task)
    tasks.check_splits(task, (split,), read=False)
    vocabulary = seqio.get_mixture_or_task(task).output_features["inputs"].vocabulary
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} not in [0, {num_shards})")
    # Shuffled unless a task forbids it (no shuffle buffer: its order is the point, as Cramming's sorted corpus).
    shuffle = all(t.shuffle_buffer_size is not None for t in tasks.subtasks(task))
    ds = seqio.get_dataset(
        task,
        task_feature_lengths=_task_lengths(spec, feature_lengths),
        feature_converter=_feature_converter(spec, vocabulary, pack),
        dataset_split=split,
        shuffle=shuffle,
        num_epochs=None if repeat else 1,
        shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
        seed=seed,
        verbose=False,
    )
    if spec.objective == "mlm":
        ds = _mask_rows(ds, spec, vocabulary, seed, shard_index)
    return ds.map(_cast, num_parallel_calls=tf.data.AUTOTUNE)


def get_batches(
    task: str,
    *,
    split: str,
    feature_lengths: Mapping[str, int],
    batch_size: int,
    seed: int,
    start_step: int = 0,
    pack: bool = True,
    shard_index: int | None = None,
    num_shards: int | None = None,
    repeat: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of each global batch from `start_step` on (see the module docstring).

    Errors in the task (unknown name, C4 not prepared, missing files) raise here, not at the first `next`.
    """
    shard_index = jax.process_index() if shard_index is None else shard_index
    num_shards = jax.process_count() if num_shards is None else num_shards
    if batch_size <= 0 or batch_size % num_shards:
        raise ValueError(f"Global batch_size {batch_size} must be a positive multiple of the {num_shards} shards")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    ds = dataset(
        task,
        split=split,
        feature_lengths=feature_lengths,
        seed=seed,
        pack=pack,
        shard_index=shard_index,
        num_shards=num_shards,
        repeat=repeat,
    )
    ds = ds.batch(batch_size // num_shards, drop_remainder=True).skip(start_step).prefetch(2)
    return _iterate(ds, task, split, start_step)


def _iterate(ds: tf.data.Dataset, task: str, split: str, start_step: int) -> Iterator[dict[str, np.ndarray]]:
    count = 0
    for batch in ds.as_numpy_iterator():
        count += 1
        yield batch
    if count == 0 and start_step == 0:
        raise UserError(
            f"Task {task!r} split {split!r} produced no full batch: the corpus is smaller than one batch of rows "
            "for these lengths. Use more text, shorter feature_lengths or a smaller batch_size."
        )


def make_global_batch(
    local: Mapping[str, np.ndarray], mesh: Mesh, batch_axes: Sequence[str] = ("data", "fsdp")
) -> dict[str, jax.Array]:
    """One global `jax.Array` per key, rows sharded over those of `batch_axes` that the mesh has."""
    axes = tuple(axis for axis in batch_axes if axis in mesh.axis_names)
    if not axes:
        raise ValueError(f"None of the batch axes {tuple(batch_axes)} is in the mesh axes {mesh.axis_names}")
    sharding = NamedSharding(mesh, PartitionSpec(axes))
    return {key: jax.make_array_from_process_local_data(sharding, value) for key, value in local.items()}
