"""Greedy and beam search against transformers' `generate` on the same weights, the cached decoder step against
teacher forcing, and the decode command."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
from test_convert_hf import V1_0, V1_1, random_hf
from test_models import tiny

from scaling import models
from scaling.convert import hf
from scaling.data import vocab
from scaling.downstream import decode
from scaling.models import layers
from scaling.training import artifact

MAX_LENGTH = 10


def hf_generate(peer, enc: np.ndarray, scores: bool = False, **kwargs) -> np.ndarray:
    with torch.no_grad():
        out = peer.generate(
            input_ids=torch.tensor(enc, dtype=torch.long),
            attention_mask=torch.tensor(enc != 0),
            max_new_tokens=MAX_LENGTH,
            do_sample=False,
            decoder_start_token_id=0,
            use_cache=False,  # transformers 5.23's cache breaks when DL > NL
            return_dict_in_generate=scores,
            output_scores=scores,
            **kwargs,
        )
    ids = (out.sequences if scores else out).numpy()
    ids = np.pad(ids[:, 1:], ((0, 0), (0, MAX_LENGTH + 1 - ids.shape[1])))  # drop the start id, pad to length
    after_eos = np.cumsum(np.cumsum(ids == 1, axis=1), axis=1) > 1  # beam search pads with EOS, greedy with 0
    ids = np.where(after_eos, 0, ids)
    return (ids, out.sequences_scores.numpy()) if scores else ids


def encoder_inputs(vocab_size: int) -> np.ndarray:
    enc = np.random.RandomState(3).randint(2, vocab_size, (8, 7)).astype(np.int32)
    enc[2, 4:] = 0
    return enc


@pytest.mark.parametrize("config", [V1_0, V1_1], ids=["v1_0", "v1_1"])
def test_greedy_and_beam_match_transformers(tmp_path, config):
    peer = random_hf(tmp_path / "hf", seed=2, gain=2.0, **config)
    model, _ = hf.load_t5(tmp_path / "hf")
    enc = encoder_inputs(config["vocab_size"])
    greedy = np.asarray(decode.greedy(model, enc, MAX_LENGTH))
    expected = hf_generate(peer, enc, num_beams=1)
    np.testing.assert_array_equal(greedy, expected)
    assert (greedy == 1).any() and len(np.unique(greedy)) > 5  # EOS happens and outputs vary: a real check

    beam1, _ = decode.beam_search(model, enc, MAX_LENGTH, beam_size=1)
    np.testing.assert_array_equal(np.asarray(beam1), greedy)
    # transformers with early_stopping="never" also searches until nothing alive can win.
    beam3, scores = decode.beam_search(model, enc, MAX_LENGTH, beam_size=3, length_penalty=1.0)
    np.testing.assert_array_equal(np.asarray(beam3), hf_generate(peer, enc, num_beams=3, early_stopping="never"))
    assert np.isfinite(np.asarray(scores)).all()


# (beams, length_penalty, early_stopping): each differs from the canonical search on some rows of one config.
SEARCHES = [(3, 1.0, False), (3, 1.0, True), (2, 2.0, True), (4, 0.5, False), (3, -1.0, "never"), (3, 2.0, "never")]


@pytest.mark.slow
@pytest.mark.parametrize("config", [V1_0, V1_1], ids=["v1_0", "v1_1"])
def test_beam_search_options_match_transformers(tmp_path, config):
    """num_beams, length_penalty and early_stopping mean what they mean in `generate`, scores included."""
    peer = random_hf(tmp_path / "hf", seed=2, gain=2.0, **config)
    model, _ = hf.load_t5(tmp_path / "hf")
    enc = encoder_inputs(config["vocab_size"])
    outputs = set()
    for beams, penalty, early in SEARCHES:
        ids, scores = decode.beam_search(model, enc, MAX_LENGTH, beams, penalty, early)
        expected, expected_scores = hf_generate(
            peer, enc, scores=True, num_beams=beams, length_penalty=penalty, early_stopping=early
        )
        np.testing.assert_array_equal(np.asarray(ids), expected, err_msg=f"{beams, penalty, early}")
        # At this gain logits reach ~60 and differ by ~1e-3 between the two implementations.
        np.testing.assert_allclose(np.asarray(scores), expected_scores, rtol=2e-5, atol=2e-3)
        outputs.add(expected.tobytes())
    assert len(outputs) >= 3  # the options really change the search
    with pytest.raises(ValueError, match="early_stopping"):
        decode.beam_search(model, enc, MAX_LENGTH, early_stopping="sometimes")


@pytest.mark.parametrize(
    "name,attention", [("tiny", "einsum"), ("tiny-v1_1", "einsum"), ("tiny-sh", "xla"), ("tiny-skv", "einsum")]
)
def test_cached_steps_equal_teacher_forcing(name, attention):
    """Position by position, the cached decoder step gives the logits the full decoder gives the whole prefix."""
    model = layers.use_attention(models.build(tiny(name), rngs=nnx.Rngs(0)), attention)
    rng = np.random.default_rng(0)
    enc = rng.integers(2, 256, (3, 9))
    enc[1, 5:] = 0
    targets = jnp.asarray(rng.integers(2, 256, (3, 7)))
    expected = nnx.jit(lambda m: m(jnp.asarray(enc), layers.shift_right(targets)))(model)

    graphdef, state = nnx.split(model)

    @jax.jit
    def cached(state):
        m = nnx.merge(graphdef, state)
        context = m.prepare_decoding(jnp.asarray(enc))

        def step(cache, i):
            logits, cache = m.decode_step(context, cache, jnp.where(i > 0, targets[:, i - 1], 0), i)
            return cache, logits

        cache, logits = jax.lax.scan(step, m.init_cache(3, 7), jnp.arange(7))
        return jnp.swapaxes(logits, 0, 1), cache

    got, cache = cached(state)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-5)
    assert cache.key.shape == (2, 3, 7, model.shape.num_kv_heads, model.shape.d_kv)
    assert not np.allclose(got[:, 1:], got[:, :1])  # positions differ: a real check


def test_decode_command_fills_spans(tmp_path, capsys):
    """The command reads the checkpoint's own vocabulary (no --vocabulary) and refuses one that does not fit."""
    from scaling import decode as command

    vocabulary = vocab.default_vocabulary()
    random_hf(tmp_path / "hf", vocab_size=8192, d_model=32, d_kv=16, num_heads=2, d_ff=64, num_layers=1)
    model, shape = hf.load_t5(tmp_path / "hf")
    artifact.save(
        tmp_path / "ours",
        shape=shape,
        params=nnx.state(model),
        vocabulary=vocabulary,
        provenance=artifact.provenance("import-hf", tmp_path / "hf"),
    )
    loaded, own = decode.load_for_decoding(tmp_path / "ours")
    assert own.vocab_size == vocabulary.vocab_size and own.encode("the park") == vocabulary.encode("the park")
    text = "The <extra_id_0> walks in <extra_id_1> park"
    assert vocab.sentinel_id(vocabulary, 0) in vocabulary.encode(text)
    assert command.main([f"--checkpoint={tmp_path / 'ours'}", "--input", text, "--max_length=6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == text and len(lines) >= 2

    ids = np.array([vocab.sentinel_id(vocabulary, 0), 100, 200, vocab.sentinel_id(vocabulary, 1), 300, 1, 0])
    pieces = command.spans(ids, vocabulary)
    assert [s for s, _ in pieces] == ["<extra_id_0>", "<extra_id_1>"]
    assert pieces[1][1] == vocabulary.decode([300])


def test_decode_reads_a_training_workdir(tmp_path):
    from test_trainer import quiet, tiny_config

    from scaling.training import trainer

    trainer.train(tiny_config(**{"budget.amount": 2}), tmp_path / "run", print_fn=quiet)
    model, vocabulary = decode.load_for_decoding(tmp_path / "run")
    assert vocabulary.vocab_size == vocab.DEFAULT_VOCAB_SIZE and model.shape.vocab_size == 8192
    tokens = np.asarray([vocabulary.encode("The nation") + [vocab.EOS_ID]], np.int32)
    assert decode.greedy(model, tokens, 4).shape == (1, 4)


def test_decode_refuses_a_missing_or_foreign_vocabulary(tmp_path):
    from scaling.errors import UserError

    random_hf(tmp_path / "hf", vocab_size=32128, d_model=8, d_kv=4, num_heads=2, d_ff=8, num_layers=1)
    model, shape = hf.load_t5(tmp_path / "hf")
    artifact.save(
        tmp_path / "t5",
        shape=shape,
        params=nnx.state(model),
        vocabulary=None,
        provenance=artifact.provenance("import-hf", tmp_path / "hf"),
    )
    with pytest.raises(UserError, match="has no vocabulary.*--vocabulary=PATH/spiece.model"):
        decode.load_for_decoding(tmp_path / "t5")
    # The shipped 8,100-id vocabulary is not a 32,128-id model's: refused, never used.
    with pytest.raises(artifact.VocabularyMismatchError, match=r"embeds 32128 ids but the vocabulary .* only 8100"):
        decode.load_for_decoding(tmp_path / "t5", vocab.DEFAULT_SPM_PATH)
