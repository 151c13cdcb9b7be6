"""Span corruption and MLM against the T5 / BERT recipes' closed-form numbers."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from scaling.data import objectives, preprocessors, vocab

VOCAB_SIZE = 1000  # sentinels 999, 998, ... as in T5's own tests


@pytest.mark.parametrize(
    "inputs_length, raw_length, targets_length",
    [(512, 568, 114), (128, 141, 29)],
)
def test_random_spans_helper_matches_t5(inputs_length, raw_length, targets_length):
    assert objectives.random_spans_helper(inputs_length, 0.15, 3.0) == (raw_length, targets_length)


def test_random_spans_helper_density_half_equalises_lengths():
    raw, targets = objectives.random_spans_helper(512, 0.5, 3.0)
    assert targets == 512 and raw > 512


def test_sentinels_replace_spans_as_in_t5():
    tokens = tf.constant([10, 11, 12, 13, 14, 15])
    mask = tf.constant([True, True, False, False, True, False])
    assert objectives.noise_span_to_unique_sentinel(tokens, mask, VOCAB_SIZE).numpy().tolist() == [999, 12, 13, 998, 15]
    assert objectives.nonnoise_span_to_unique_sentinel(tokens, mask, VOCAB_SIZE).numpy().tolist() == [
        10,
        11,
        999,
        14,
        998,
    ]


@pytest.mark.parametrize("length", [2, 5, 37, 141, 568])
def test_noise_mask_counts(length):
    seeds = tf.constant([[1, 2], [3, 4]])
    mask = objectives.random_spans_noise_mask(length, 0.15, seeds, 3.0).numpy()
    num_noise = min(max(round(length * 0.15), 1), length - 1)
    spans = max(round(num_noise / 3.0), 1)
    assert mask.shape == (length,) and mask.sum() == num_noise
    assert not mask[0] and mask[-1]  # non-noise span first, noise span last
    assert np.sum(mask[1:] & ~mask[:-1]) == spans
    again = objectives.random_spans_noise_mask(length, 0.15, seeds, 3.0).numpy()
    np.testing.assert_array_equal(mask, again)


def _reconstruct(inputs: np.ndarray, targets: np.ndarray) -> list[int]:
    """Fills each input sentinel with the target tokens that follow the same sentinel."""
    spans, current = {}, None
    for t in targets:
        if t >= VOCAB_SIZE - 100:
            current = spans.setdefault(int(t), [])
        elif t != vocab.EOS_ID:
            current.append(int(t))
    out = []
    for t in inputs:
        if t >= VOCAB_SIZE - 100:
            out.extend(spans[int(t)])
        elif t != vocab.EOS_ID:
            out.append(int(t))
    return out


class _Vocab(seqio.PassThroughVocabulary):
    def __init__(self):
        super().__init__(size=VOCAB_SIZE - 100)

    @property
    def extra_ids(self):
        return 100

    @property
    def vocab_size(self):
        return VOCAB_SIZE

    @property
    def eos_id(self):
        return vocab.EOS_ID


def test_span_corruption_statistics_over_thousands_of_examples():
    """Rows of 568 raw tokens become exactly 512 inputs and 114 targets; density and span length match T5."""
    rng = np.random.default_rng(0)
    doc_lengths = rng.integers(1, 2000, size=1300)  # ~1.3M tokens: a few thousand rows of 568
    stream = rng.integers(3, 900, size=doc_lengths.sum(), dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices({"targets": tf.RaggedTensor.from_row_lengths(stream, doc_lengths)})
    features = {k: seqio.Feature(_Vocab(), add_eos=True) for k in ("inputs", "targets")}
    lengths = {"inputs": 512, "targets": 114}
    with seqio.utils.map_seed_manager(0):
        ds = preprocessors.span_corruption(ds, lengths, features)
    ds = seqio.preprocessors.append_eos_after_trim(ds, output_features=features, sequence_length=lengths)
    noise = kept = spans = 0
    span_lengths = []
    for i, ex in enumerate(ds.as_numpy_iterator()):
        inputs, targets = ex["inputs"], ex["targets"]
        assert len(inputs) == 512 and len(targets) == 114 and inputs[-1] == targets[-1] == vocab.EOS_ID
        if i < 200:  # the rows are the raw stream cut every 568 tokens, and corruption loses nothing
            np.testing.assert_array_equal(_reconstruct(inputs, targets), stream[i * 568 : (i + 1) * 568])
        sentinels_in = np.flatnonzero(inputs >= VOCAB_SIZE - 100)
        assert inputs[sentinels_in].tolist() == list(range(VOCAB_SIZE - 1, VOCAB_SIZE - 1 - len(sentinels_in), -1))
        noise += int(np.sum((targets < VOCAB_SIZE - 100) & (targets > 1)))
        kept += int(np.sum((inputs < VOCAB_SIZE - 100) & (inputs > 1)))
        spans += len(sentinels_in)
        bounds = np.flatnonzero(targets >= VOCAB_SIZE - 100)
        span_lengths += np.diff(np.append(bounds, 113)).tolist()  # tokens after each target sentinel
    assert i + 1 == len(stream) // 568 > 2000
    assert noise / (noise + kept) == pytest.approx(0.15, abs=0.01)
    assert noise / spans == pytest.approx(3.0, abs=0.15)
    assert min(span_lengths) >= 1 and max(span_lengths) > 6  # random lengths, not fixed threes


def _mask_many(rows: np.ndarray, rate: float) -> list[dict]:
    ds = tf.data.Dataset.from_tensor_slices(rows).enumerate()
    ds = ds.map(
        lambda i, r: objectives.mlm_mask(
            r, tf.stack([tf.constant(7, tf.int64), i]), mask_rate=rate, mask_id=999, random_token_range=(3, 900)
        )
    )
    return list(ds.as_numpy_iterator())


def test_mlm_mask_counts_and_replacement_split():
    rng = np.random.default_rng(1)
    rows = rng.integers(3, 900, size=(2000, 128), dtype=np.int32)
    rows[:, 40] = vocab.EOS_ID  # a separator
    rows[::2, 100:] = vocab.PAD_ID  # half the rows end in padding
    out = _mask_many(rows, 0.25)
    to_mask = to_random = kept = total = 0
    for row, m in zip(rows, out):
        nonpad = int((row != 0).sum())
        masked = np.flatnonzero(m["loss_weights"])
        assert len(masked) == round(0.25 * nonpad)
        assert set(np.unique(m["loss_weights"])) <= {0.0, 1.0}
        assert m["positions"].shape == (32,) and m["weights"].shape == (32,)  # ceil(0.25 * 128)
        np.testing.assert_array_equal(m["positions"][: len(masked)], masked)
        assert not m["positions"][len(masked) :].any() and not m["weights"][len(masked) :].any()
        assert row[masked].min() > vocab.EOS_ID  # never pad or EOS
        np.testing.assert_array_equal(m["inputs"][m["loss_weights"] == 0], row[m["loss_weights"] == 0])
        new = m["inputs"][masked]
        assert ((new == 999) | ((new >= 3) & (new < 900))).all()
        to_mask += int((new == 999).sum())
        kept += int((new == row[masked]).sum())
        to_random += int(((new != 999) & (new != row[masked])).sum())
        total += len(masked)
    assert to_mask / total == pytest.approx(0.8, abs=0.01)
    assert to_random / total == pytest.approx(0.1, abs=0.01)
    assert kept / total == pytest.approx(0.1, abs=0.01)


def test_mlm_static_prediction_slots():
    assert objectives.num_mlm_predictions(128, 0.15) == 20
    assert objectives.num_mlm_predictions(512, 0.25) == 128
