"""Cramming's curation as the authors run it — compression filter, then exact substring dedup (Lee et al.), then
rows sorted by sentence count — and the curated C4 task over a small C4-format fixture; nothing downloads."""

import json
import random

import numpy as np
import pytest
import seqio
import tensorflow as tf

from scaling.data import curation, pipeline, prepare_cramming, tasks, vocab
from scaling.errors import UserError

SPM = str(vocab.DEFAULT_SPM_PATH)


def brute_force_dedup(documents: list[str], length: int) -> list[str]:
    """Every byte inside a `length`-byte window (within one document) that occurs twice or more, struck."""
    encoded = [d.encode() for d in documents]
    counts: dict[bytes, int] = {}
    for e in encoded:
        for p in range(len(e) - length + 1):
            counts[e[p : p + length]] = counts.get(e[p : p + length], 0) + 1
    kept = []
    for e in encoded:
        struck = [False] * len(e)
        for p in range(len(e) - length + 1):
            if counts[e[p : p + length]] > 1:
                struck[p : p + length] = [True] * length
        text = bytes(b for b, s in zip(e, struck, strict=True) if not s).decode(errors="ignore")
        if text.strip():
            kept.append(text)
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_substring_dedup_is_lee_et_al_exact_substring(seed):
    rng = random.Random(seed)
    alphabet = "ab cd."
    shared = ["".join(rng.choice(alphabet) for _ in range(rng.randint(12, 30))) for _ in range(3)]
    docs = []
    for _ in range(12):
        parts = [rng.choice(shared) if rng.random() < 0.6 else "".join(rng.choice(alphabet) for _ in range(9))]
        parts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) for _ in range(3)]
        docs.append("".join(rng.sample(parts, len(parts))) + "é")  # a two-byte character, as real text has
    kept, spans, struck, emptied = curation.dedup_substrings(docs, length=10)
    assert kept == brute_force_dedup(docs, 10)
    assert spans > 0 and struck > 0 and emptied == len(docs) - len(kept)


def test_dedup_strikes_every_occurrence_and_never_spans_documents():
    boiler = "Subscribe to our newsletter for the latest deals, offers and much more news! "
    docs = [f"Doc one starts here. {boiler}Then it ends.", f"{boiler}Doc two.", "No overlap. " + boiler[:40]]
    kept, spans, struck, emptied = curation.dedup_substrings(docs, length=75)
    # boiler (78 bytes) occurs twice: struck from both; its 40-byte prefix alone is shorter than 75, so it stays
    assert kept == ["Doc one starts here. Then it ends.", "Doc two.", docs[2]]
    assert (spans, struck, emptied) == (2, 2 * len(boiler), 0)
    # the end of one document and the start of the next never form a duplicate together (Lee et al.'s unique
    # separators; Cramming's constant "<EOT>" joiner would not stop it either way here)
    head, tail = "abcdefghijklmnopqrstuvw", "ABCDEFGHIJKLMNOPQRSTUVWXY"
    joined = [head, tail, head + tail]
    assert curation.dedup_substrings(joined, length=48)[0] == joined


def test_filter_keeps_tokens_below_threshold_times_characters_and_runs_before_dedup():
    count = lambda d: len(d) // 4 if not d.startswith("#") else len(d)  # '#…' documents are incompressible
    shared = " ".join(f"w{i}" for i in range(30))  # 109 bytes, no 75-byte window repeated inside it
    docs = ["#" + shared, "plain " + shared]  # dedup first would strike `shared` from the plain document too
    kept, report = curation.curate(docs, curation.Curation(dedup=True, filter_threshold=0.25), count)
    assert kept == ["plain " + shared]
    assert (report.incompressible_documents_removed, report.duplicate_spans_removed) == (1, 0)
    # the authors' test is tokens < t × characters (pretraining_preparation.py:410): equality is dropped
    assert curation.compression_filter(["abcd", "abcdefgh"], lambda d: 1, threshold=0.25)[0] == ["abcdefgh"]


def test_rows_sort_by_sentence_ends_most_first_and_keep_ties_in_order():
    vocabulary = vocab.default_vocabulary()
    ends = curation.sentence_ends(vocabulary)
    sp = vocabulary.tokenizer
    assert ends[sp.piece_to_id(".")] == 1 and ends[sp.piece_to_id('."')] == 1 and ends[sp.piece_to_id("▁the")] == 0
    assert ends[vocab.EOS_ID] == 0 and ends[vocabulary.vocab_size - 1] == 0
    texts = ["No stop here at all", "One. Two. Three.", "Just one.", "Also none"]
    rows = curation.token_rows([sp.EncodeAsIds(t) for t in texts], length=3)
    stream = [t for text in texts for t in (*sp.EncodeAsIds(text), vocab.EOS_ID)]
    assert rows.dtype == np.int32 and rows.tolist() == [stream[i : i + 3] for i in range(0, len(stream) - 2, 3)]
    ordered = curation.sort_rows(rows, ends)
    counts = ends[ordered].sum(axis=1)
    assert list(counts) == sorted(counts, reverse=True)
    zero = [tuple(r) for r in rows if ends[r].sum() == 0]
    assert [tuple(r) for r in ordered if ends[r].sum() == 0] == zero  # ties in corpus order


def c4_source(documents: dict[str, list[str]]) -> seqio.FunctionDataSource:
    """A C4-format fixture (text, url, timestamp) as a seqio source."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        docs = documents[split]
        return tf.data.Dataset.from_tensor_slices(
            {
                "text": docs,
                "url": [f"https://example.com/{i}" for i in range(len(docs))],
                "timestamp": ["2019"] * len(docs),
            }
        )

    return seqio.FunctionDataSource(dataset_fn, splits=tuple(documents))


@pytest.fixture
def restore_c4_tasks():
    yield
    tasks.register_c4_tasks()


def test_c4_cramming_task_refuses_until_prepared_then_trains_on_filtered_deduplicated_sorted_rows(
    tmp_path, restore_c4_tasks
):
    out = tmp_path / "c4_cramming"
    tasks.register_c4_tasks(data_dir=str(tmp_path), vocabulary_path=SPM, cramming_dir=str(out))
    with pytest.raises(UserError, match=r"never on raw C4.*python -m scaling.data.prepare_cramming --out="):
        tasks.check_splits("c4_cramming_mlm", ("train", "validation"))
    with pytest.raises(UserError, match="prepare_cramming"):
        next(
            pipeline.get_batches("c4_cramming_mlm", split="train", feature_lengths={"inputs": 16}, batch_size=2, seed=0)
        )

    sotu_vocabulary = vocab.default_vocabulary().tokenizer
    sotu = [d for d in tasks.task_spec("sotu_mlm").corpus.documents("validation") if len(d) > 200]
    sotu = [d for d in sotu if len(sotu_vocabulary.EncodeAsIds(d)) < 0.2 * len(d)]  # well inside the filter
    boiler = "Click here to accept cookies and continue reading this page of our website today!"
    html = "<div class=x7><a href=#q9>zq</a></div>" * 3  # hard to compress: many tokens per character
    train = [*sotu[:60], html, f"{sotu[60]} {boiler}", f"{boiler} {sotu[61]}"]
    manifest = prepare_cramming.prepare(
        c4_source({"train": train, "validation": sotu[100:140]}),
        out,
        vocabulary_path=SPM,
        documents={"train": len(train), "validation": 30},
        source_name="fixture",
        dedup=True,  # Table 2's "Dedup." rows; the crammed recipe leaves it out
        print_fn=lambda _: None,
    )
    report = manifest["splits"]["train"]["report"]
    assert report["incompressible_documents_removed"] >= 1 and report["duplicate_spans_removed"] >= 2
    assert manifest["curation"]["filter_threshold"] == 0.25 and manifest["curation"]["dedup_length"] == 75
    assert manifest["splits"]["validation"]["documents_read"] == 30
    with pytest.raises(UserError, match="--overwrite"):
        prepare_cramming.prepare(
            c4_source({"train": train}), out, vocabulary_path=SPM, documents={"train": 1}, source_name="x"
        )

    spec = tasks.task_spec("c4_cramming_mlm")
    assert (spec.objective, spec.mask_rate, spec.corpus.tokenized) == ("mlm", 0.25, True)
    docs = spec.corpus.documents("train")
    assert html not in docs and not any(boiler in d for d in docs) and sotu[0] in docs
    rows = spec.corpus.rows("train")
    counts = curation.sentence_ends(spec.corpus.vocabulary)[rows].sum(axis=1)
    assert list(counts) == sorted(counts, reverse=True) and counts[0] > counts[-1]
    batch = next(
        pipeline.get_batches(
            "c4_cramming_mlm", split="train", feature_lengths={"inputs": 128}, batch_size=4, seed=3, num_shards=1
        )
    )
    np.testing.assert_array_equal(batch["encoder_target_tokens"], rows[:4])  # the sorted rows, in order, unshuffled
    assert spec.corpus.reports("train")[1].rows_sorted == len(rows)


def test_c4_cramming_task_refuses_a_corpus_curated_with_another_tokenizer(tmp_path, restore_c4_tasks):
    out = tmp_path / "c4_cramming"
    out.mkdir()
    (out / tasks.CRAMMING_MANIFEST).write_text(json.dumps({"vocabulary": "gs://other/spm.model"}))
    tasks.register_c4_tasks(data_dir=str(tmp_path), vocabulary_path=SPM, cramming_dir=str(out))
    with pytest.raises(UserError, match="curated with the vocabulary 'gs://other/spm.model'.*--vocabulary="):
        tasks.check_splits("c4_cramming_mlm", ("train",))


def test_prepare_stops_before_dedup_would_exhaust_memory(tmp_path):
    source = c4_source({"train": ["The people of the United States and their government. " * 20] * 50})
    with pytest.raises(UserError, match=r"--train_documents=\d+\).*leave out --dedup.*deduplicate-text-datasets"):
        prepare_cramming.prepare(
            source, tmp_path, vocabulary_path=SPM, documents={"train": 50}, source_name="x", dedup=True, memory_bytes=1
        )
    assert not (tmp_path / tasks.CRAMMING_MANIFEST).exists()
    # without dedup the filter streams: no memory bound, and the recipe's defaults are recorded
    manifest = prepare_cramming.prepare(
        source, tmp_path, vocabulary_path=SPM, documents={"train": 50}, source_name="x", memory_bytes=1
    )
    assert manifest["splits"]["train"]["report"]["documents_out"] == 50 and manifest["curation"]["dedup_length"] is None
    assert len((tmp_path / "train" / "train-00000.jsonl").read_text().splitlines()) == 50


def test_prepare_command_without_c4_names_the_tfds_build(tmp_path, capsys):
    code = prepare_cramming.main([f"--out={tmp_path / 'out'}", f"--c4_data_dir={tmp_path}", "--train_documents=10"])
    err = capsys.readouterr().err
    assert code != 0 and "is not prepared" in err and "tfds build" in err


@pytest.mark.slow
def test_embedded_cramming_corpus_is_curated_and_its_training_rows_sorted():
    spec = tasks.task_spec("sotu_cramming_mlm")
    corpus = spec.corpus
    _, train = corpus.reports("train")
    # the crammed recipe: filtered and sorted, never deduplicated (§4.4, final_story_cb_o4_a6000.sh:15)
    assert train.incompressible_documents_removed > 0 and train.duplicate_spans_removed == 0 and train.rows_sorted
    assert (tasks.task_spec("sotu_mlm_25").mask_rate, tasks.task_spec("sotu_mlm_25").corpus.curation) == (
        0.25,
        curation.NO_CURATION,
    )
    assert tasks.task_spec("sotu_curated_mlm").mask_rate == 0.15
    assert tasks.task_spec("sotu_curated_mlm").corpus is corpus
    rows = corpus.rows("train")
    counts = curation.sentence_ends(corpus.vocabulary)[rows].sum(axis=1)
    assert list(counts) == sorted(counts, reverse=True)
    assert corpus.reports("validation")[1].rows_sorted == 0  # evaluation rows are a sample, not a curriculum
    a, b = corpus.rows("validation", seed=0), corpus.rows("validation", seed=1)
    assert a.shape == b.shape and not np.array_equal(a, b)
    batch = next(
        pipeline.get_batches(
            "sotu_cramming_mlm", split="train", feature_lengths={"inputs": 128}, batch_size=8, seed=0, num_shards=1
        )
    )
    np.testing.assert_array_equal(batch["encoder_target_tokens"], rows[:8])
