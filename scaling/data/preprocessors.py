"""seqio preprocessors (tf.data -> tf.data) that turn tokenized documents into training examples.

Both objectives first concatenate the token stream and cut it into fixed-length rows, so no row is short and
documents shorter than a span or a row are never a special case; the stream's last partial row is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import seqio
import tensorflow as tf

from scaling.data import objectives, vocab


def concat_and_chunk(ds: tf.data.Dataset, length: int, key: str, separator: int | None = None) -> tf.data.Dataset:
    """Concatenates `key` over examples (each followed by `separator` when given) into rows of exactly `length`."""
    if length < 1:
        raise ValueError(f"Row length must be positive, got {length}")

    def step(buffer: tf.Tensor, example: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        tokens = tf.cast(example[key], tf.int32)
        if separator is not None:
            tokens = tf.concat([tokens, [separator]], axis=0)
        buffer = tf.concat([buffer, tokens], axis=0)
        num_rows = tf.size(buffer) // length
        rows = tf.reshape(buffer[: num_rows * length], [num_rows, length])
        return buffer[num_rows * length :], rows

    rows = ds.scan(tf.zeros([0], tf.int32), step).unbatch()
    return rows.map(lambda row: {key: row}, num_parallel_calls=tf.data.AUTOTUNE)


def span_corruption(
    ds: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = objectives.NOISE_DENSITY,
    mean_noise_span_length: float = objectives.MEAN_NOISE_SPAN_LENGTH,
) -> tf.data.Dataset:
    """T5 span corruption of the tokenized `targets` stream; seqio's output features append EOS afterwards.

    Raw rows hold `random_spans_helper(inputs_length)` tokens so that inputs fill `inputs_length` exactly.
    """
    raw_length, targets_length = objectives.random_spans_helper(
        sequence_length["inputs"], noise_density, mean_noise_span_length
    )
    if sequence_length["targets"] < targets_length:
        raise ValueError(
            f"targets length {sequence_length['targets']} is too short for inputs length "
            f"{sequence_length['inputs']} at noise density {noise_density} and mean span "
            f"{mean_noise_span_length}: use targets >= {targets_length}"
        )
    vocab_size = output_features["targets"].vocabulary.vocab_size
    rows = concat_and_chunk(ds, raw_length, key="targets")

    @seqio.map_over_dataset(num_seeds=2)
    def corrupt(example: Mapping[str, tf.Tensor], seeds: tf.Tensor) -> dict[str, tf.Tensor]:
        return objectives.span_corrupt(example["targets"], seeds, vocab_size, noise_density, mean_noise_span_length)

    return corrupt(rows)


def mlm_rows(
    ds: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    mask_rate: float = objectives.MLM_MASK_RATE,
    separator: int | None = vocab.EOS_ID,
) -> tf.data.Dataset:
    """Cramming-style rows: documents joined by EOS into full rows of `inputs` length; targets = inputs.

    `separator=None` re-cuts a stream that is joined already (the token rows of a sorted `tasks.TextCorpus`).

    Masking happens later, per row, in `pipeline` (seqio's EncoderFeatureConverter would otherwise derive the
    loss weights from the mask token alone and miss the 10% random / 10% kept positions). This preprocessor marks
    a seqio task as MLM: `tasks.task_spec` reads the objective and `mask_rate` (bind it with functools.partial)
    from it, so any task using it trains as MLM without further registration.
    """
    del mask_rate  # applied by `pipeline`, read from here by `tasks.task_spec`
    rows = concat_and_chunk(ds, sequence_length["inputs"], key="inputs", separator=separator)
    return rows.map(lambda ex: {"inputs": ex["inputs"], "targets": ex["inputs"]}, num_parallel_calls=tf.data.AUTOTUNE)
