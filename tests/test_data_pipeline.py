"""Vocabulary, corpora, curation, tasks and batches on small real text; nothing here downloads."""

import json
import time

import jax
import numpy as np
import pytest
import seqio
from jax.sharding import Mesh

from scaling.data import corpora, inspect, objectives, pipeline, stats, tasks, vocab
from scaling.errors import UserError

SPAN_LENGTHS = {"inputs": 64, "targets": 16}


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    """Real, unique paragraphs from the embedded validation split (enough for a few hundred short rows)."""
    docs = list(dict.fromkeys(tasks.task_spec("sotu_mlm").corpus.documents("validation")))
    return docs[:400]


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory, paragraphs) -> list[str]:
    root = tmp_path_factory.mktemp("corpus")
    (root / "a.txt").write_text("\n\n".join(paragraphs[:200]) + "\n", encoding="utf-8")
    with open(root / "b.jsonl", "w", encoding="utf-8") as f:
        for p in paragraphs[200:300]:
            f.write(json.dumps({"text": p}) + "\n")
        f.write(json.dumps({"text": ""}) + "\n")  # empty document: counted skip
        f.write("not json\n")  # counted skip
    (root / "c.txt").write_bytes(b"caf\xe9 latin-1 bytes\n" + paragraphs[300].encode() + b"\n")  # non-UTF-8 line
    (root / "val").mkdir()
    (root / "val" / "val.txt").write_text("\n".join(paragraphs[301:400]) + "\n", encoding="utf-8")
    return tasks.register_text_tasks(
        "usertext", [str(root / "*.txt"), str(root / "*.jsonl")], validation_glob=str(root / "val" / "*.txt")
    )


def test_default_vocabulary():
    v = vocab.default_vocabulary()
    assert v.vocab_size == vocab.DEFAULT_VOCAB_SIZE == 8100 and v.extra_ids == 100
    assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
    assert (
        vocab.sentinel_id(v, 0) == 8099 and v.decode([8099]) == "<extra_id_0>" and v.decode([8000]) == "<extra_id_99>"
    )
    assert vocab.mask_token_id(v) == 8099 and vocab.regular_token_range(v) == (3, 8000)
    text = "The state of the Union is strong."
    assert v.decode(v.encode(text)) == text
    assert vocab.DEFAULT_SPM_PATH.stat().st_size < 600_000


def test_missing_vocabulary_file_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_vocab"):
        vocab.get_vocabulary(tmp_path / "nope.model")


def test_sotu_split_is_by_year_and_disjoint():
    train, validation = corpora.sotu_files("train"), corpora.sotu_files("validation")
    assert len(train) > 200 and len(validation) > 15
    assert {corpora.sotu_year(p) % 10 for p in validation} == {5}
    assert not {corpora.sotu_year(p) for p in train} & {corpora.sotu_year(p) for p in validation}


def test_read_documents_counts_skips(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b'{"text": "ok"}\n{"text": ""}\n{"body": "x"}\n\xff\xfe\n')
    report = corpora.ReadReport()
    assert list(corpora.read_documents([tmp_path / "x.jsonl"], report)) == ["ok"]
    assert (report.documents, report.skipped_empty, report.skipped_bad_json, report.skipped_non_utf8) == (1, 1, 1, 1)


def test_bad_globs_and_empty_corpora_fail_clearly(tmp_path):
    with pytest.raises(UserError, match="No files match"):
        tasks.register_text_tasks("nothing", str(tmp_path / "*.txt"))
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\n\n")
    tasks.register_text_tasks("badbytes", str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="no line of .*bad.txt is readable .1 not UTF-8"):
        pipeline.get_batches(
            "badbytes_mlm",
            split="train",
            feature_lengths={"inputs": 32},
            batch_size=2,
            seed=0,
            shard_index=0,
            num_shards=1,
        )
    (tmp_path / "tiny.txt").write_text("Too short.\n")
    tasks.register_text_tasks("tiny", str(tmp_path / "tiny.txt"))
    batches = pipeline.get_batches(
        "tiny_mlm",
        split="train",
        feature_lengths={"inputs": 32},
        batch_size=2,
        seed=0,
        shard_index=0,
        num_shards=1,
        repeat=False,
    )
    with pytest.raises(ValueError, match="no full batch"):
        next(batches)


def test_c4_not_prepared_fails_fast_without_download(tmp_path):
    tasks.register_c4_tasks(data_dir=str(tmp_path), vocabulary_path=None)
    start = time.perf_counter()
    try:
        with pytest.raises(corpora.C4NotPreparedError, match="tfds build c4/en.*sotu_span_corruption"):
            pipeline.get_batches(
                "c4_span_corruption",
                split="train",
                feature_lengths={"inputs": 512, "targets": 114},
                batch_size=8,
                seed=0,
            )
        with pytest.raises(corpora.C4NotPreparedError, match=str(tmp_path)):
            pipeline.get_batches(
                "c4_mlm",
                split="validation",
                feature_lengths={"inputs": 128},
                batch_size=8,
                seed=0,
                shard_index=1,
                num_shards=2,
            )
    finally:
        tasks.register_c4_tasks()
    assert time.perf_counter() - start < 10


def test_registration_is_idempotent():
    import importlib

    importlib.reload(tasks)
    for name in ("c4_span_corruption", "c4_mlm", "sotu_span_corruption", "sotu_mlm"):
        assert name in seqio.TaskRegistry.names() and name in tasks.registered_tasks()


def test_user_text_task_batches_and_read_report(user_tasks):
    span, mlm = user_tasks
    batch = next(
        pipeline.get_batches(
            span, split="train", feature_lengths=SPAN_LENGTHS, batch_size=4, seed=0, shard_index=0, num_shards=1
        )
    )
    expected = {
        "encoder_input_tokens": (4, 64), "encoder_segment_ids": (4, 64), "encoder_positions": (4, 64),
        "decoder_target_tokens": (4, 16), "decoder_input_tokens": (4, 16), "decoder_loss_weights": (4, 16),
        "decoder_segment_ids": (4, 16), "decoder_positions": (4, 16),
    }  # fmt: skip
    assert {k: v.shape for k, v in batch.items()} == expected
    assert batch["decoder_loss_weights"].dtype == np.float32 and batch["encoder_input_tokens"].dtype == np.int32
    read, _ = tasks.task_spec(span).corpus.reports("train")
    assert (read.files, read.documents) == (3, 301)
    assert (read.skipped_empty, read.skipped_bad_json, read.skipped_non_utf8) == (1, 1, 1)
    assert tasks.task_spec(mlm).corpus.documents("validation") == tasks.task_spec(span).corpus.documents("validation")


def test_batches_are_deterministic_and_resume_exactly(user_tasks):
    _, mlm = user_tasks
    get = lambda **kw: pipeline.get_batches(
        mlm, split="train", feature_lengths={"inputs": 32}, batch_size=4, shard_index=0, num_shards=1, **kw
    )
    first = [b for _, b in zip(range(6), get(seed=3))]
    resumed = [b for _, b in zip(range(3), get(seed=3, start_step=3))]
    for a, b in zip(first[3:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = next(get(seed=4))
    assert not np.array_equal(other["encoder_input_tokens"], first[0]["encoder_input_tokens"])


def test_shards_read_disjoint_documents(user_tasks):
    """Each shard's rows come from a disjoint slice of the documents, and the slices cover the split."""
    corpus = tasks.task_spec(user_tasks[0]).corpus
    task = seqio.get_mixture_or_task(user_tasks[0])
    raw_length, _ = objectives.random_spans_helper(SPAN_LENGTHS["inputs"])
    docs = [ex["text"].decode() for ex in corpus.dataset_fn("validation", True, 5).as_numpy_iterator()]
    halves = [docs[0::2], docs[1::2]]
    assert not set(halves[0]) & set(halves[1]) and sorted(halves[0] + halves[1]) == sorted(
        corpus.documents("validation")
    )
    for index, half in enumerate(halves):
        info = seqio.ShardInfo(index, 2)
        ds = task.get_dataset(SPAN_LENGTHS, split="validation", shuffle=True, seed=5, shard_info=info, num_epochs=1)
        rows = sum(1 for _ in ds.as_numpy_iterator())
        assert rows == sum(len(corpus.vocabulary.encode(d)) for d in half) // raw_length  # the shard's tokens, cut


def test_sotu_mlm_batches_match_the_recipe():
    batches = [
        b
        for _, b in zip(
            range(4),
            pipeline.get_batches(
                "sotu_mlm",
                split="validation",
                feature_lengths={"inputs": 64},
                batch_size=32,
                seed=0,
                shard_index=0,
                num_shards=1,
            ),
        )
    ]
    b = batches[0]
    assert b["mlm_positions"].shape == (32, 10) and b["mlm_positions"].dtype == np.int32  # ceil(0.15 * 64)
    assert b["mlm_weights"].dtype == np.float32 and b["encoder_loss_weights"].dtype == np.float32
    assert (b["encoder_segment_ids"] == 1).all() and (b["encoder_positions"] == np.arange(64)).all()
    rows = np.arange(32)[:, None]
    np.testing.assert_array_equal(b["encoder_loss_weights"][rows, b["mlm_positions"]] > 0, b["mlm_weights"] > 0)
    measured = stats.mlm_stats(batches, vocab.mask_token_id(vocab.default_vocabulary()))
    assert measured["mask_rate"] == pytest.approx(0.15, abs=0.01)  # round(0.15 * 64) / 64 = 0.156
    assert measured["replaced_with_mask"] == pytest.approx(0.8, abs=0.06)


def test_make_global_batch_on_a_local_mesh():
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    local = {"encoder_input_tokens": np.arange(8, dtype=np.int32).reshape(4, 2)}
    out = pipeline.make_global_batch(local, mesh)
    assert out["encoder_input_tokens"].shape == (4, 2)
    np.testing.assert_array_equal(np.asarray(out["encoder_input_tokens"]), local["encoder_input_tokens"])
    with pytest.raises(ValueError, match="batch axes"):
        pipeline.make_global_batch(local, mesh, batch_axes=("replica",))


def test_inspect_cli_json_on_embedded_corpus(capsys):
    inspect.main(["--task=sotu_span_corruption", "--split=validation", "--batches=4", "--batch_size=8", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert (result["inputs_length"], result["targets_length"]) == (512, 114)
    assert result["noise_density"] == pytest.approx(0.15, abs=0.01)
    assert result["mean_noise_span_length"] == pytest.approx(3.0, abs=0.15)
    assert result["padding_fraction"] == 0.0 and max(result["sentinel_ids"]) == 8099
    assert result["shapes"]["encoder_input_tokens"] == [[8, 512], "int32"]
