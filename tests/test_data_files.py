"""Your own data: unreadable lines are counted and reported (and fail above the threshold), a missing validation
split fails before training, and any seqio task or mixture trains and inspects without a private registry."""

import functools
import json
import logging

import pytest
import seqio
import tensorflow as tf
from test_trainer import quiet, records, tiny_config

from scaling.data import corpora, inspect, pipeline, preprocessors, tasks, vocab
from scaling.errors import UserError
from scaling.training import trainer

MLM_LENGTHS = {"inputs": 32}


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    """Real, unique paragraphs from the embedded validation split."""
    return list(dict.fromkeys(tasks.task_spec("sotu_mlm").corpus.documents("validation")))[:300]


def write_jsonl(path, paragraphs, bad_every=0, bad_line='{"text": broken'):
    """`paragraphs` as JSON records; with `bad_every=k` every k-th line (1-based) is `bad_line` instead."""
    lines = []
    for i, p in enumerate(paragraphs, start=1):
        lines.append(bad_line if bad_every and i % bad_every == 0 else json.dumps({"text": p}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def first_batch(task: str, split: str = "train"):
    batches = pipeline.get_batches(
        task, split=split, feature_lengths=MLM_LENGTHS, batch_size=2, seed=0, shard_index=0, num_shards=1
    )
    return next(batches)


def test_half_malformed_jsonl_fails_naming_file_and_lines(tmp_path, paragraphs):
    write_jsonl(tmp_path / "half.jsonl", paragraphs[:200], bad_every=2)
    tasks.register_text_tasks("half", str(tmp_path / "half.jsonl"))
    with pytest.raises(UserError) as error:
        first_batch("half_mlm")
    message = str(error.value)
    assert "half.jsonl has 100 of 200" in message and "100 not JSON" in message
    assert "first at line 2, 4, 6, 8, 10" in message and "max_bad_fraction" in message and "\n" not in message
    # the documented knob lets the user accept them
    tasks.register_text_tasks("half", str(tmp_path / "half.jsonl"), max_bad_fraction=0.6)
    assert first_batch("half_mlm")["encoder_input_tokens"].shape == (2, 32)
    read, _ = tasks.task_spec("half_mlm").corpus.reports("train")
    assert (read.lines, read.documents, read.skipped_bad_json) == (200, 100, 100)


def test_records_without_the_text_field_count_as_bad(tmp_path, paragraphs):
    write_jsonl(tmp_path / "keys.jsonl", paragraphs[:20], bad_every=4, bad_line='{"body": "no text here"}')
    report = corpora.ReadReport()
    docs = list(corpora.read_documents([tmp_path / "keys.jsonl"], report))
    assert len(docs) == 15 and report.skipped_missing_key == 5 == report.skipped_bad_json
    assert report.bad_files[str(tmp_path / "keys.jsonl")].first_bad[:2] == [(4, "no text field"), (8, "no text field")]
    with pytest.raises(UserError, match="keys.jsonl has 5 of 20 .5 no 'text' string; first at line 4, 8, 12"):
        corpora.check_bad_lines(report, "corpus 'keys' split 'train'")


def test_a_few_bad_lines_train_and_are_reported(tmp_path, paragraphs, caplog):
    """2 bad lines in 300 (0.7%, under the 1% default): training goes on and each is logged as file:line."""
    lines = [json.dumps({"text": p}) for p in paragraphs[:250]]
    lines[99] = "not json at all"
    lines.insert(200, json.dumps({"title": "no text"}))
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "val.txt").write_text("\n".join(paragraphs[250:300]) + "\n", encoding="utf-8")
    tasks.register_text_tasks("fewbad", str(tmp_path / "train.jsonl"), validation_glob=str(tmp_path / "val.txt"))
    config = tiny_config(**{"data.task": "fewbad_span_corruption", "budget.amount": 2})
    with caplog.at_level(logging.WARNING):
        final = trainer.train(config, tmp_path / "run", print_fn=quiet)
    assert final["step"] == 2 and [r["step"] for r in records(tmp_path / "run") if "loss" in r] == [1, 2]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"{tmp_path / 'train.jsonl'}:100 (not JSON)" in warned
    assert f"{tmp_path / 'train.jsonl'}:201 (no text field)" in warned
    read, _ = tasks.task_spec("fewbad_mlm").corpus.reports("train")
    assert (read.lines, read.documents, read.skipped_bad_json, read.skipped_missing_key) == (251, 249, 2, 1)


def test_non_utf8_files_name_the_encoding_problem(tmp_path, paragraphs):
    text = "\n".join(paragraphs[:50]) + "\n"
    (tmp_path / "latin.txt").write_bytes(("Café crème, déjà vu.\n" * 30 + text).encode("latin-1", "replace"))
    tasks.register_text_tasks("latin", str(tmp_path / "latin.txt"))
    with pytest.raises(UserError, match=r"latin.txt has 30 of 80 .30 not UTF-8; first at line 1, 2, 3.*WINDOWS-1252"):
        first_batch("latin_mlm")
    # a file with no UTF-8 line at all says so (it used to be "the corpus is smaller than one batch")
    (tmp_path / "wide.txt").write_bytes(text.encode("utf-16"))
    tasks.register_text_tasks("wide", str(tmp_path / "wide.txt"))
    with pytest.raises(
        UserError, match=r"no line of .*wide.txt is readable .\d+ not UTF-8; first at line 1, 2, 3.*UTF-16"
    ) as error:
        first_batch("wide_mlm")
    assert "smaller than one batch" not in str(error.value)


def test_missing_validation_split_fails_before_the_first_step(tmp_path, paragraphs):
    (tmp_path / "train.txt").write_text("\n".join(paragraphs[:100]) + "\n", encoding="utf-8")
    tasks.register_text_tasks("noval", str(tmp_path / "train.txt"))
    config = tiny_config(**{"data.task": "noval_span_corruption", "budget.amount": 4})
    with pytest.raises(UserError, match=r"Task 'noval_span_corruption' has no 'validation' split .*validation_glob"):
        trainer.build_run(config)
    with pytest.raises(UserError, match="no 'validation' split"):
        trainer.train(config, tmp_path / "run", print_fn=quiet)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not records(tmp_path / "run")
    # an empty validation split is refused the same way, before training
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    tasks.register_text_tasks("emptyval", str(tmp_path / "train.txt"), validation_glob=str(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="'emptyval' split 'validation' has no documents left"):
        trainer.build_run(tiny_config(**{"data.task": "emptyval_span_corruption"}))


# ------------------------------------------------------------------------- stock seqio tasks and mixtures


@pytest.fixture(scope="module")
def stock_tasks(paragraphs):
    """Two seqio tasks registered the stock way (no scaling.data.tasks call): one span-corrupted with our
    preprocessor at noise 0.1, one plain sequence-to-sequence; and a mixture of the two."""
    vocabulary = vocab.default_vocabulary()
    splits = {"train": paragraphs[:200], "validation": paragraphs[200:300]}

    def dataset_fn(split, shuffle_files, seed=None):
        return tf.data.Dataset.from_tensor_slices({"text": splits[split]})

    features = {
        "inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
        "targets": seqio.Feature(vocabulary, add_eos=True),
    }
    source = seqio.FunctionDataSource(dataset_fn, splits=tuple(splits))
    tokenize = functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False)
    seqio.TaskRegistry.add(
        "stock_span",
        source=source,
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
            tokenize,
            seqio.CacheDatasetPlaceholder(),
            functools.partial(preprocessors.span_corruption, noise_density=0.1),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features,
    )
    seqio.TaskRegistry.add(
        "stock_copy",
        source=source,
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey, key_map={"inputs": "text", "targets": "text"}),
            tokenize,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features,
    )
    seqio.MixtureRegistry.add("stock_mix", [("stock_span", 1.0), ("stock_copy", 1.0)])
    yield "stock_span", "stock_copy", "stock_mix"
    seqio.MixtureRegistry.remove("stock_mix")
    seqio.TaskRegistry.remove("stock_span")
    seqio.TaskRegistry.remove("stock_copy")


def test_stock_task_specs_are_read_from_seqio(stock_tasks):
    span, copy, mix = stock_tasks
    assert tasks.task_spec(span) == tasks.TaskSpec(span, "span_corruption", 0.1, 3.0)
    assert tasks.task_spec(copy).objective == "span_corruption" and tasks.task_spec(copy).noise_density is None
    spec = tasks.task_spec(mix)
    assert (spec.objective, spec.noise_density, spec.tasks) == ("span_corruption", 0.1, (copy, span))
    assert tasks.task_spec("sotu_cramming_mlm").mask_rate == tasks.CRAMMING_MASK_RATE
    assert {span, copy, mix} <= set(tasks.registered_tasks())
    with pytest.raises(
        UserError, match=r"Unknown task 'stock_spam'; did you mean 'stock_span'\? registered: .*sotu_mlm"
    ):
        tasks.task_spec("stock_spam")


@pytest.mark.parametrize("which", [0, pytest.param(2, marks=pytest.mark.slow)], ids=["task", "mixture"])
def test_stock_seqio_task_and_mixture_train(tmp_path, stock_tasks, which):
    config = tiny_config(**{"data.task": stock_tasks[which], "budget.amount": 2})
    final = trainer.train(config, tmp_path, print_fn=quiet)
    rows = records(tmp_path)
    assert final["step"] == 2 and "eval_loss" in rows[-1]


def test_inspect_user_files_stock_tasks_and_unknown_names(tmp_path, stock_tasks, paragraphs, capsys):
    write_jsonl(tmp_path / "mine.jsonl", paragraphs[:150], bad_every=100)
    argv = ["--batches=2", "--batch_size=4", "--inputs_length=64", "--json"]
    assert inspect.main([f"--text_glob={tmp_path / 'mine.jsonl'}", "--task=mine_mlm", *argv]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "mine_mlm" and result["shapes"]["encoder_input_tokens"] == [[4, 64], "int32"]
    assert result["read"]["skipped_bad_json"] == 1 and result["read"]["documents"] == 149
    assert inspect.main(["--task=stock_mix", "--split=validation", *argv]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["objective"] == "span_corruption" and result["tasks"] == ["stock_copy", "stock_span"]
    assert inspect.main(["--task=nope_mlm", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Unknown task 'nope_mlm'") and "stock_mix" in err and "\n" not in err
    assert inspect.main([f"--text_glob={tmp_path / 'mine.jsonl'}", "--task=mine", *argv]) == 2
    assert "mine_span_corruption or mine_mlm" in capsys.readouterr().err
    assert inspect.main([f"--text_glob={tmp_path / 'mine.jsonl'}", "--task=mine_mlm", "--split=validation"]) == 2
    assert "has no 'validation' split" in capsys.readouterr().err
