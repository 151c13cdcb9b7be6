"""Greedy and beam-search decoding for our T5, and `python -m scaling.decode` to fill in sentinel spans.

    python -m scaling.decode --checkpoint=DIR --input "The <extra_id_0> walks in <extra_id_1> park"

Both searches are one jitted `lax.fori_loop` over a fixed `max_length`. Each step reruns the decoder over
the whole (fixed-size) prefix buffer and reads one position: no key/value cache, so a step costs a full
decoder pass and a sequence O(max_length²) decoder positions — simple and exact (causal masking hides the
unfilled tail), and fine for the short spans span corruption produces. The decoder starts from the pad id
(0) and stops a sequence at EOS (1), padding it with 0 afterwards, as transformers' `generate` does.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.data.vocab import EOS_ID, PAD_ID
from scaling.models import layers as L
from scaling.models.t5 import T5

if TYPE_CHECKING:
    import seqio


def _step_logits(
    model: T5, encoded: jax.Array, enc_segments: jax.Array, generated: jax.Array, i: jax.Array
) -> jax.Array:
    """Float32 logits [rows, V] for position i, given tokens generated so far in `generated` [rows, T]."""
    inputs = L.shift_right(generated)  # position 0 reads the start (pad) id
    logits = model.decode(encoded, enc_segments, inputs, jnp.ones_like(inputs))
    return jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _greedy(graphdef: nnx.GraphDef, state: nnx.State, tokens: jax.Array, max_length: int) -> jax.Array:
    model = nnx.merge(graphdef, state)
    enc_segments = L.segments_of(tokens, None)
    encoded = model.encode(tokens, enc_segments)
    batch = tokens.shape[0]

    def step(i, carry):
        generated, done = carry
        next_token = jnp.argmax(_step_logits(model, encoded, enc_segments, generated, i), axis=-1)
        next_token = jnp.where(done, PAD_ID, next_token).astype(generated.dtype)
        return generated.at[:, i].set(next_token), done | (next_token == EOS_ID)

    init = (jnp.zeros((batch, max_length), jnp.int32), jnp.zeros((batch,), bool))
    return jax.lax.fori_loop(0, max_length, step, init)[0]


def greedy(model: T5, encoder_tokens: jax.Array, max_length: int) -> jax.Array:
    """Generated ids [B, max_length] (EOS included, then pad): the argmax at every step."""
    graphdef, state = nnx.split(model)
    return _greedy(graphdef, state, jnp.asarray(encoder_tokens, jnp.int32), max_length)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _beam(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens: jax.Array,
    max_length: int,
    beam_size: int,
    length_penalty: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    model = nnx.merge(graphdef, state)
    batch, k = tokens.shape[0], beam_size
    enc_segments = L.segments_of(tokens, None)
    encoded = model.encode(tokens, enc_segments)
    rows = lambda x: jnp.repeat(x, k, axis=0)
    encoded, enc_segments = rows(encoded), rows(enc_segments)
    neg_inf = jnp.float32(-1e9)

    def step(i, carry):
        alive, alive_logp, finished, finished_score = carry
        logits = _step_logits(model, encoded, enc_segments, alive.reshape(batch * k, max_length), i)
        vocab = logits.shape[-1]
        scores = (alive_logp[:, :, None] + jax.nn.log_softmax(logits).reshape(batch, k, vocab)).reshape(batch, -1)
        top_logp, top_index = jax.lax.top_k(scores, 2 * k)  # 2K: at most K of them end in EOS
        beam, token = top_index // vocab, top_index % vocab
        seqs = jnp.take_along_axis(alive, beam[:, :, None], axis=1).at[:, :, i].set(token)
        ends = token == EOS_ID
        # Finished: the best K of those already finished and the candidates that end here, length-normalised.
        end_score = jnp.where(ends, top_logp / (i + 1.0) ** length_penalty, neg_inf)
        pool_score = jnp.concatenate([finished_score, end_score], axis=1)
        pool = jnp.concatenate([finished, seqs], axis=1)
        finished_score, keep = jax.lax.top_k(pool_score, k)
        finished = jnp.take_along_axis(pool, keep[:, :, None], axis=1)
        # Alive: the best K candidates that go on.
        alive_logp, keep = jax.lax.top_k(jnp.where(ends, neg_inf, top_logp), k)
        return jnp.take_along_axis(seqs, keep[:, :, None], axis=1), alive_logp, finished, finished_score

    alive = jnp.zeros((batch, k, max_length), jnp.int32)
    alive_logp = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((k - 1,), neg_inf)]), (batch, 1))
    finished = jnp.zeros_like(alive)
    finished_score = jnp.full((batch, k), neg_inf)
    alive, alive_logp, finished, finished_score = jax.lax.fori_loop(
        0, max_length, step, (alive, alive_logp, finished, finished_score)
    )
    # Beams still alive at max_length compete as they are (transformers' finalisation does the same).
    scores = jnp.concatenate([finished_score, alive_logp / float(max_length) ** length_penalty], axis=1)
    best = jnp.argmax(scores, axis=1)
    seqs = jnp.concatenate([finished, alive], axis=1)
    return jnp.take_along_axis(seqs, best[:, None, None], axis=1)[:, 0], jnp.max(scores, axis=1)


def beam_search(
    model: T5, encoder_tokens: jax.Array, max_length: int, beam_size: int = 4, length_penalty: float = 1.0
) -> tuple[jax.Array, jax.Array]:
    """(ids [B, max_length], scores [B]): the best hypothesis by sum of log-probabilities / length**penalty.

    Keeps `beam_size` unfinished and `beam_size` finished hypotheses per input and runs all `max_length`
    steps (no early stop), so a finished hypothesis is final only when nothing alive can still beat it.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size = {beam_size}: use 1 or more")
    graphdef, state = nnx.split(model)
    return _beam(
        graphdef, state, jnp.asarray(encoder_tokens, jnp.int32), max_length, beam_size, jnp.float32(length_penalty)
    )


def load_for_decoding(
    checkpoint: str | os.PathLike, vocabulary_path: str | os.PathLike | None = None
) -> tuple[T5, seqio.Vocabulary]:
    """(model, vocabulary) of any model directory (artifact, training workdir, finetuned T5), for decoding.

    The vocabulary is the model's own, or `vocabulary_path` instead; a model that has none is refused with the
    `--vocabulary` hint, and a vocabulary whose size or special ids disagree with the model is refused
    (:func:`scaling.training.artifact.check_vocabulary`) — both UserErrors, never a silent guess.
    """
    from scaling.errors import UserError
    from scaling.training import artifact

    loaded = artifact.load(checkpoint, vocabulary=vocabulary_path)
    if not loaded.shape.is_encoder_decoder:
        raise UserError(
            f"{loaded.path} holds {loaded.shape.name}, a {loaded.shape.family} encoder; decoding needs "
            f"an encoder-decoder (T5)"
        )
    if loaded.vocabulary is None:
        raise UserError(
            f"{loaded.path} has no vocabulary (its source shipped no tokenizer); pass "
            f"--vocabulary=PATH/spiece.model, the sentencepiece model it was trained with"
        )
    return loaded.model(), loaded.vocabulary
