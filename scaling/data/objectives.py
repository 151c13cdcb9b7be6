"""Pretraining objectives as pure TensorFlow functions: T5 span corruption and BERT masked language modelling.

Span corruption follows the T5 recipe (`t5.data.preprocessors`, Raffel et al. 2020) line by line, so that its
statistics and lengths match the published ones; it is re-implemented because the old `t5` package is not a
dependency. Every random choice takes an explicit stateless seed, so a (seed, example) pair always gives the
same corruption.
"""

from __future__ import annotations

import math

import tensorflow as tf

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
MLM_MASK_RATE = 0.15  # BERT's; Cramming uses 0.25
MLM_REPLACE_WITH_MASK = 0.8
MLM_REPLACE_WITH_RANDOM = 0.1  # the remaining 10% keep their token


def random_spans_helper(
    inputs_length: int,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    extra_tokens_per_span_inputs: int = 1,
    extra_tokens_per_span_targets: int = 1,
) -> tuple[int, int]:
    """Raw tokens per example so that the corrupted inputs (with EOS) fill `inputs_length` exactly.

    Returns (raw tokens_length, targets_length): 512 -> (568, 114) and 128 -> (141, 29) at the defaults.
    """

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise_tokens = int(round(tokens_length * noise_density))
        num_nonnoise_tokens = tokens_length - num_noise_tokens
        num_noise_spans = int(round(num_noise_tokens / mean_noise_span_length))
        # Inputs hold the non-noise tokens, one sentinel per span and EOS; targets the reverse.
        return (
            num_nonnoise_tokens + num_noise_spans * extra_tokens_per_span_inputs + 1,
            num_noise_tokens + num_noise_spans * extra_tokens_per_span_targets + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    # T5's hack: at density 0.5 make targets as long as inputs, which is likelier to be a round number.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def _random_segmentation(num_items: tf.Tensor, num_segments: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Lengths of `num_segments` random non-empty segments that sum to `num_items`."""
    first_in_segment = tf.pad(
        _stateless_shuffle(tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32), seed), [[1, 0]]
    )
    segment_id = tf.cumsum(first_in_segment)
    return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)


def _stateless_shuffle(value: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.gather(value, tf.argsort(tf.random.stateless_uniform(tf.shape(value), seed=seed)))


def random_spans_noise_mask(
    length: tf.Tensor | int,
    noise_density: float,
    seeds: tf.Tensor,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
) -> tf.Tensor:
    """Boolean noise mask of `length` with round(length * density) noise tokens in random-length spans.

    Spans alternate non-noise / noise, starting with non-noise; the number of spans is
    round(num_noise / mean_noise_span_length). `seeds` is a [2, 2] int tensor (one stateless seed per segmentation).
    """
    if noise_density == 0.0:
        return tf.zeros([length], tf.bool)
    orig_length = length
    length = tf.maximum(length, 2)  # avoid degeneracy
    num_noise_tokens = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise_tokens = tf.minimum(tf.maximum(num_noise_tokens, 1), length - 1)
    num_noise_spans = tf.cast(tf.round(tf.cast(num_noise_tokens, tf.float32) / mean_noise_span_length), tf.int32)
    num_noise_spans = tf.maximum(num_noise_spans, 1)
    num_nonnoise_tokens = length - num_noise_tokens
    noise_span_lengths = _random_segmentation(num_noise_tokens, num_noise_spans, seeds[0])
    nonnoise_span_lengths = _random_segmentation(num_nonnoise_tokens, num_noise_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([nonnoise_span_lengths, noise_span_lengths], axis=1), [num_noise_spans * 2])
    span_starts = tf.cumsum(interleaved)[:-1]
    span_start_indicator = tf.math.unsorted_segment_sum(tf.ones_like(span_starts), span_starts, length)
    is_noise = tf.equal(tf.cumsum(span_start_indicator) % 2, 1)
    return is_noise[:orig_length]


def noise_span_to_unique_sentinel(tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Replaces each noise span by one sentinel, counting down from `vocab_size - 1` (`<extra_id_0>`)."""
    prev_token_is_noise = tf.pad(noise_mask[:-1], [[1, 0]])
    first_noise_tokens = tf.logical_and(noise_mask, tf.logical_not(prev_token_is_noise))
    subsequent_noise_tokens = tf.logical_and(noise_mask, prev_token_is_noise)
    sentinel = vocab_size - tf.cumsum(tf.cast(first_noise_tokens, tokens.dtype))
    tokens = tf.where(first_noise_tokens, sentinel, tokens)
    return tf.boolean_mask(tokens, tf.logical_not(subsequent_noise_tokens))


def nonnoise_span_to_unique_sentinel(tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """The targets of span corruption: each kept span becomes a sentinel, the noise spans stay."""
    return noise_span_to_unique_sentinel(tokens, tf.logical_not(noise_mask), vocab_size)


def span_corrupt(
    tokens: tf.Tensor,
    seeds: tf.Tensor,
    vocab_size: int,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
) -> dict[str, tf.Tensor]:
    """One example's (inputs, targets), without EOS (the seqio output features append it)."""
    mask = random_spans_noise_mask(tf.size(tokens), noise_density, seeds, mean_noise_span_length)
    return {
        "inputs": noise_span_to_unique_sentinel(tokens, mask, vocab_size),
        "targets": nonnoise_span_to_unique_sentinel(tokens, mask, vocab_size),
    }


def num_mlm_predictions(length: int, mask_rate: float) -> int:
    """K, the static number of prediction slots per row: ceil(mask_rate * length)."""
    return math.ceil(mask_rate * length)


def mlm_mask(
    tokens: tf.Tensor,
    seed: tf.Tensor,
    *,
    mask_rate: float,
    mask_id: int,
    random_token_range: tuple[int, int],
    special_ids: tuple[int, ...] = (0, 1),
) -> dict[str, tf.Tensor]:
    """BERT masking of one row: round(mask_rate * non-pad tokens) positions, 80% mask / 10% random / 10% kept.

    Pad and EOS (`special_ids`) are never chosen, and random replacements come from `random_token_range`
    (ordinary pieces only). Returns the corrupted `inputs`, `loss_weights` (1.0 exactly on chosen positions),
    and the sparse view `positions`/`weights` of static length ceil(mask_rate * len(tokens)), sorted, padded
    with position 0 and weight 0.
    """
    length = tokens.shape[0]
    num_slots = num_mlm_predictions(length, mask_rate)
    choose_seed, kind_seed, token_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    is_candidate = tf.reduce_all(tf.not_equal(tokens[:, None], tf.constant(special_ids, tokens.dtype)), axis=1)
    num_nonpad = tf.reduce_sum(tf.cast(tf.not_equal(tokens, 0), tf.float32))
    num_masked = tf.cast(tf.round(mask_rate * num_nonpad), tf.int32)
    num_masked = tf.minimum(num_masked, tf.reduce_sum(tf.cast(is_candidate, tf.int32)))
    scores = tf.where(is_candidate, tf.random.stateless_uniform([length], choose_seed), 2.0)
    chosen = tf.sort(tf.argsort(scores)[:num_masked])
    is_masked = tf.scatter_nd(chosen[:, None], tf.ones_like(chosen, tf.bool), [length])
    kind = tf.random.stateless_uniform([length], kind_seed)
    random_tokens = tf.random.stateless_uniform(
        [length], token_seed, minval=random_token_range[0], maxval=random_token_range[1], dtype=tf.int32
    )
    replaced = tf.where(
        kind < MLM_REPLACE_WITH_MASK, tf.cast(mask_id, tokens.dtype), tf.cast(random_tokens, tokens.dtype)
    )
    replaced = tf.where(kind < MLM_REPLACE_WITH_MASK + MLM_REPLACE_WITH_RANDOM, replaced, tokens)
    pad = num_slots - num_masked
    return {
        "inputs": tf.where(is_masked, replaced, tokens),
        "loss_weights": tf.cast(is_masked, tf.float32),
        "positions": tf.ensure_shape(tf.pad(tf.cast(chosen, tf.int32), [[0, pad]]), [num_slots]),
        "weights": tf.ensure_shape(tf.pad(tf.ones([num_masked], tf.float32), [[0, pad]]), [num_slots]),
    }
