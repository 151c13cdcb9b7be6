"""Greedy and beam-search decoding for our T5, and `python -m scaling.decode` to fill in sentinel spans.

    python -m scaling.decode --checkpoint=DIR --input "The <extra_id_0> walks in <extra_id_1> park"

Both searches are one jitted `lax.while_loop` with a key/value cache: the encoder runs once, with every decoder
layer's cross-attention keys and values (`T5.prepare_decoding`); then each step runs the decoder on one
position (`T5.decode_step`), writing its self-attention keys and values into the cache in place. A step costs
one position's decoder pass, whatever the prefix length. The loop ends when every sequence has finished or at
`max_length`. The decoder starts from the pad id (0) and stops a sequence at EOS (1), padding it with 0
afterwards. Outputs equal transformers' `generate` (greedy, and beam search with its `num_beams`,
`length_penalty` and `early_stopping`), which `tests/test_decode.py` checks.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scaling.data.vocab import EOS_ID, PAD_ID
from scaling.models import layers as L
from scaling.models.t5 import T5

if TYPE_CHECKING:
    import seqio

EarlyStopping = bool | Literal["never"]
# transformers' stand-in for minus infinity in beam scores; the same float32 sums keep ties and order the same.
NEG = -1.0e9


@functools.partial(jax.jit, static_argnums=(0, 3))
def _greedy(graphdef: nnx.GraphDef, state: nnx.State, tokens: jax.Array, max_length: int) -> jax.Array:
    model = nnx.merge(graphdef, state)
    context = model.prepare_decoding(tokens)
    batch = tokens.shape[0]

    def unfinished(carry) -> jax.Array:
        i, _, done, _, _ = carry
        return (i < max_length) & ~jnp.all(done)

    def step(carry):
        i, generated, done, previous, cache = carry
        logits, cache = model.decode_step(context, cache, previous, i)
        token = jnp.where(done, PAD_ID, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        return i + 1, generated.at[:, i].set(token), done | (token == EOS_ID), token, cache

    start = jnp.full((batch,), PAD_ID, jnp.int32)
    init = (0, jnp.zeros((batch, max_length), jnp.int32), jnp.zeros((batch,), bool), start)
    return jax.lax.while_loop(unfinished, step, (*init, model.init_cache(batch, max_length)))[1]


def greedy(model: T5, encoder_tokens: jax.Array, max_length: int) -> jax.Array:
    """Generated ids [B, max_length] (EOS included, then pad): the argmax at every step."""
    graphdef, state = nnx.split(model)
    return _greedy(graphdef, state, jnp.asarray(encoder_tokens, jnp.int32), max_length)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _beam(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens: jax.Array,
    max_length: int,
    beam_size: int,
    early_stopping: EarlyStopping,
    penalties: jax.Array,
    best_penalties: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """transformers' `_beam_search` step for step (its names in comments), on one cache row per beam.
    `penalties[i]` divides the scores of hypotheses of length i + 1; `best_penalties[i]` the best running score
    after step i in the early-stop test."""
    model = nnx.merge(graphdef, state)
    batch, k = tokens.shape[0], beam_size
    context = model.prepare_decoding(tokens).repeat(k)
    top_k_mask = jnp.arange(2 * k) < k  # top_num_beam_mask: only the best K candidates may finish

    def unfinished(carry) -> jax.Array:
        (i, stop), *_ = carry
        return (i < max_length) & ~stop

    def step(carry):
        (i, _), (running, running_score), (finished, finished_score, is_finished), improvable, cache = carry
        previous = jnp.where(i == 0, PAD_ID, running[:, :, jnp.maximum(i - 1, 0)]).reshape(batch * k)
        logits, cache = model.decode_step(context, cache, previous, i)
        vocab = logits.shape[-1]
        scores = jax.nn.log_softmax(logits).reshape(batch, k, vocab) + running_score[:, :, None]
        # _get_top_k_continuations: 2K candidates, so that K go on even if K of them end here.
        top_score, top_index = jax.lax.top_k(scores.reshape(batch, k * vocab), 2 * k)
        beam, token = top_index // vocab, top_index % vocab
        candidates = jnp.take_along_axis(running, beam[:, :, None], axis=1).at[:, :, i].set(token)
        ends = (token == EOS_ID) | (i + 1 >= max_length)  # next_token_hits_stopping_criteria
        # _get_running_beams_for_next_iteration: the best K that go on; their cache rows follow them.
        running_score, keep = jax.lax.top_k(top_score + ends.astype(jnp.float32) * NEG, k)
        running = jnp.take_along_axis(candidates, keep[:, :, None], axis=1)
        rows = (jnp.arange(batch)[:, None] * k + jnp.take_along_axis(beam, keep, axis=1)).reshape(-1)
        cache = L.KV(*(jnp.take(a, rows, axis=1) for a in cache))
        # _update_finished_beams: length-normalised candidates that end here join the K best finished.
        score = top_score / penalties[i]
        full = jnp.all(is_finished, axis=1, keepdims=True) & (early_stopping is True)
        score = score + full.astype(jnp.float32) * NEG
        score = score + (~improvable).astype(jnp.float32) * NEG
        just_finished = ends & top_k_mask
        score = score + (~just_finished).astype(jnp.float32) * NEG
        finished_score, keep = jax.lax.top_k(jnp.concatenate([finished_score, score], axis=1), k)
        finished = jnp.take_along_axis(jnp.concatenate([finished, candidates], axis=1), keep[:, :, None], axis=1)
        is_finished = jnp.take_along_axis(jnp.concatenate([is_finished, just_finished], axis=1), keep, axis=1)
        # _check_early_stop_heuristic: can the best running beam still beat the worst finished one?
        best_running = running_score[:, :1] / best_penalties[i]
        worst = jnp.where(is_finished, jnp.min(finished_score, axis=1, keepdims=True), NEG)
        improvable = improvable & jnp.any(best_running > worst, axis=1, keepdims=True)
        # _beam_search_has_unfinished_sequences
        stop = ~jnp.any(improvable) | (jnp.all(is_finished) & (early_stopping is True)) | jnp.all(ends)
        return (i + 1, stop), (running, running_score), (finished, finished_score, is_finished), improvable, cache

    sequences = jnp.zeros((batch, k, max_length), jnp.int32)
    running_score = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((k - 1,), NEG)]), (batch, 1))
    finished = (sequences, jnp.full((batch, k), NEG), jnp.zeros((batch, k), bool))
    init = (
        (0, jnp.asarray(False)),
        (sequences, running_score),
        finished,
        jnp.ones((batch, 1), bool),
        model.init_cache(batch * k, max_length),
    )
    _, _, (finished, finished_score, _), _, _ = jax.lax.while_loop(unfinished, step, init)
    return finished[:, 0], finished_score[:, 0]


def beam_search(
    model: T5,
    encoder_tokens: jax.Array,
    max_length: int,
    beam_size: int = 4,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = "never",
) -> tuple[jax.Array, jax.Array]:
    """(ids [B, max_length], scores [B]): the best hypothesis by sum of log-probabilities / length**penalty.

    transformers' beam search: `beam_size` running hypotheses per input; at each step the best 2 × beam_size
    continuations, of which those among the first beam_size that end in EOS (or reach `max_length`) compete for
    beam_size finished places. `early_stopping` decides when an input is done: "never" (the default, the
    canonical search: when no running hypothesis can beat the worst finished one, even at `max_length` if the
    penalty favours length), False (the same test at the current length: transformers' default) or True (as soon
    as beam_size hypotheses have finished).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size = {beam_size}: use 1 or more")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping = {early_stopping!r}: use True, False or 'never'")
    # Length penalties as transformers computes them (a Python float power, then float32), one per length; with
    # "never" and a penalty that favours length, the early-stop test assumes the best running beam reaches max_length.
    penalties = np.arange(1, max_length + 1, dtype=np.float64) ** length_penalty
    best = np.full_like(penalties, penalties[-1]) if early_stopping == "never" and length_penalty > 0 else penalties
    graphdef, state = nnx.split(model)
    tokens = jnp.asarray(encoder_tokens, jnp.int32)
    as_f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    return _beam(graphdef, state, tokens, max_length, beam_size, early_stopping, as_f32(penalties), as_f32(best))


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
