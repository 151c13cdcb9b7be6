"""Translation: parallel-file tasks and their unreadable lines, WMT14 refused where unprepared, sacreBLEU scores,
and a tiny T5 trained, decoded with beam search and scored end to end on a corpus the test writes."""

import importlib.util
import itertools
import json
from pathlib import Path

import pytest
import sacrebleu

from scaling import accounting, shapes
from scaling.data import corpora, pipeline, tasks, translation
from scaling.downstream import translation as evaluation
from scaling.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


def sentences(n: int, offset: int = 0) -> list[str]:
    """Deterministic English sentences from small word lists (their pseudo-French is the target)."""
    subjects = ["The people", "Our nation", "The congress", "We", "The government", "Every state"]
    verbs = ["will defend", "must build", "can protect", "should study", "has found"]
    objects = ["the peace", "a new law", "the famous world", "our military", "the public liberty"]
    combos = list(itertools.product(subjects, verbs, objects))
    return [" ".join(combos[(offset + i) % len(combos)]) + "." for i in range(n)]


def write_tsv(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(f"{s}\t{translation.pseudo_french(s)}\n" for s in rows))
    return path


# ------------------------------------------------------------------------------------------------ BLEU


def test_bleu_is_sacrebleu_with_its_signature_and_a_hand_computed_value():
    # One pair: 1- to 4-gram matches 5/6, 3/5, 2/4, 1/3 and equal lengths, so BLEU = (1/12)^(1/4).
    one = evaluation.bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert one.score == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-9)
    assert one.precisions == pytest.approx((500 / 6, 60.0, 50.0, 100 / 3))
    assert (one.brevity_penalty, one.signature) == (1.0, SIGNATURE)
    hypotheses = ["Le chat est assis sur le tapis.", "Il pleut, dit-il.", "Nous allons a Paris demain matin", "Oui"]
    references = ["Le chat s'est assis sur le tapis.", "Il pleut, dit-elle.", "Nous irons a Paris demain.", "Non merci"]
    ours = evaluation.bleu(hypotheses, references)
    theirs = sacrebleu.corpus_bleu(hypotheses, [references])
    assert ours.score == pytest.approx(theirs.score, abs=1e-12) and 0 < ours.score < 100
    assert ours.brevity_penalty == pytest.approx(theirs.bp) and ours.hypothesis_length == theirs.sys_len
    assert evaluation.bleu(references, references).score == pytest.approx(100.0)
    intl = evaluation.bleu(hypotheses, references, tokenize="intl")
    assert "tok:intl" in intl.signature
    with pytest.raises(UserError, match="tokenize"):
        evaluation.bleu(hypotheses, references, tokenize="moses")


def test_pseudo_french_is_a_fixed_word_mapping():
    text = "The United States of America is a famous country; it has PUBLIC military, truly. NASA"
    assert translation.pseudo_french(text) == (
        "Le Unis Etats de Amerique est un fameux pays; il a PUBLIQUE militaire, trument. NASA"
    )
    assert translation.pseudo_french("  x, y!\n") == "  x, y!\n"


# ------------------------------------------------------------------------------------------- the tasks


def test_tsv_and_jsonl_tasks_give_prefixed_inputs_and_raw_targets(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", sentences(20))
    validation = write_tsv(tmp_path / "valid.tsv", sentences(4, offset=50))
    assert translation.register_translation_tasks("t_tsv", str(train), validation_glob=str(validation)) == ["t_tsv"]
    rows = list(translation.texts("t_tsv", "validation").as_numpy_iterator())
    first = sentences(4, offset=50)[0]
    assert rows[0]["source"].decode() == first
    assert rows[0]["inputs"].decode() == "translate English to French: " + first
    assert rows[0]["targets"].decode() == translation.pseudo_french(first)
    assert translation.translation_spec("t_tsv").prefix == "translate English to French: "
    assert tasks.task_spec("t_tsv").objective == "span_corruption"  # encoder-decoder, no corruption
    assert tasks.task_spec("t_tsv").noise_density is None

    records = [
        {"id": i, "translation": {"de": s, "en": translation.pseudo_french(s)}} for i, s in enumerate(sentences(9))
    ]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    translation.register_translation_tasks(
        "t_jsonl",
        str(jsonl),
        source_language="de",
        target_language="en",
        source_field="translation.de",
        target_field="translation.en",
    )
    rows = list(translation.texts("t_jsonl", "train").as_numpy_iterator())
    assert len(rows) == 9 and rows[3]["inputs"].decode().startswith("translate German to English: ")
    assert rows[3]["targets"].decode() == records[3]["translation"]["en"]


def test_unreadable_lines_are_reported_by_file_and_line(tmp_path, caplog):
    good = [f"{s}\t{translation.pseudo_french(s)}" for s in sentences(150)]
    few = tmp_path / "few.tsv"
    few.write_text("\n".join([*good[:99], "only one column", *good[99:]]) + "\n")  # 1 of 151 lines: under 1%
    translation.register_translation_tasks("t_few", str(few))
    assert translation.texts("t_few", "train").cardinality() == 150
    assert f"{few}:100 (1 tab-separated field(s), no column 1)" in caplog.text

    many = tmp_path / "many.tsv"
    lines = [*good[:40], "no tab here", *good[40:80], "x\t ", *good[80:100]]  # line 82: an empty side, skipped
    encoded = [line.encode() for line in lines]
    encoded.insert(82, b"caf\xe9\tcafe")  # line 83: Latin-1
    many.write_bytes(b"\n".join(encoded) + b"\n")
    translation.register_translation_tasks("t_many", str(many))
    with pytest.raises(UserError, match=rf"2 of 103 lines are unreadable.*{many}:41 .*{many}:83 \(not UTF-8\)"):
        translation.texts("t_many", "train")
    translation.register_translation_tasks("t_many_ok", str(many), max_bad_fraction=1.0)
    assert translation.texts("t_many_ok", "train").cardinality() == 100

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"en": "a", "fr": "b"}\n[1, 2]\nnot json\n{"en": "c"}\n')
    translation.register_translation_tasks("t_json", str(jsonl))
    with pytest.raises(UserError, match=r"3 of 4 lines.*bad.jsonl:2 \(not JSON\).*:4 \(no 'fr' string\)"):
        translation.texts("t_json", "train")
    utf16 = tmp_path / "utf16.tsv"
    utf16.write_bytes("a\tb\nc\td\n".encode("utf-16"))
    translation.register_translation_tasks("t_utf16", str(utf16))
    with pytest.raises(UserError, match=r"no line of .*utf16.tsv is readable.*UTF-16"):
        translation.texts("t_utf16", "train")


def test_registration_refuses_bad_arguments(tmp_path):
    tsv = write_tsv(tmp_path / "a.tsv", sentences(3))
    (tmp_path / "b.txt").write_text("x\n")
    with pytest.raises(UserError, match="No files match"):
        translation.register_translation_tasks("t", str(tmp_path / "missing*.tsv"))
    with pytest.raises(UserError, match=r"\.tsv and \.jsonl"):
        translation.register_translation_tasks("t", str(tmp_path / "*"))
    with pytest.raises(UserError, match="0-based column numbers"):
        translation.register_translation_tasks("t", str(tsv), source_field="en")
    with pytest.raises(UserError, match="Unknown language code"):
        translation.register_translation_tasks("t", str(tsv), target_language="xx")
    with pytest.raises(UserError, match="both 'en'"):
        translation.register_translation_tasks("t", str(tsv), target_language="en")
    with pytest.raises(UserError, match="not a translation task"):
        translation.translation_spec("sotu_span_corruption")


def test_wmt14_fails_at_once_with_the_tfds_build_command(tmp_path):
    try:
        translation.register_wmt14_tasks(data_dir=str(tmp_path))
        command = f"tfds build wmt14_translate/fr-en --data_dir={tmp_path}"
        with pytest.raises(corpora.TfdsNotPreparedError, match=rf"not prepared.*`{command}`.*sotu_en_pseudofr"):
            pipeline.get_batches(
                "wmt14_en_fr", split="train", feature_lengths={"inputs": 8, "targets": 8}, batch_size=2, seed=0
            )
        with pytest.raises(corpora.TfdsNotPreparedError, match="tfds build"):
            translation.texts("wmt14_en_fr", "validation")
    finally:
        translation.register_wmt14_tasks()


def test_the_offline_corpus_is_sotu_sentences_and_their_pseudo_french():
    pairs = seqio_pairs("sotu_en_pseudofr", "validation")
    assert len(pairs) > 2000
    assert all(t == translation.pseudo_french(s) for s, t in pairs[:100])
    low, high = translation.SENTENCE_WORDS
    assert all(low <= len(s.split()) <= high for s, _ in pairs)


def seqio_pairs(task: str, split: str) -> list[tuple[str, str]]:
    import seqio

    return seqio.TaskRegistry.get(task).source.pairs(split)


# ------------------------------------------------------------------------------------------------ configs


def load_config(name: str, arg: str | None = None):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, (module.get_config(arg) if arg else module.get_config())


def test_wmt14_grid_is_li_et_als_depths_and_widths():
    module, config = load_config("translate_wmt14")
    assert config.data.task == "wmt14_en_fr" and config.budget.unit == "seconds"
    assert config.model.name == "small"  # Transformer-base: 6 layers, 512 wide, FFN 2048, 8 heads
    counts = []
    for depth, width in itertools.product(module.DEPTHS, module.WIDTHS):
        _, cell = load_config("translate_wmt14", f"l{depth}-h{width}")
        shape = shapes.parse(cell.model.name, vocab_size=cell.model.vocab_size)
        assert (shape.num_encoder_layers, shape.num_decoder_layers, shape.d_model) == (depth, depth, width)
        assert (shape.d_ff, shape.num_heads * shape.d_kv) == (4 * width, width)
        assert cell.optimizer.learning_rate == pytest.approx((width * 4000) ** -0.5)
        counts.append(accounting.param_counts(shape).total)
    assert len(set(counts)) == len(counts)
    for bad in ("l3-h512", "deep"):
        with pytest.raises(ValueError, match="l<depth>-h<width>"):
            load_config("translate_wmt14", bad)


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow  # about 30 s alone on 2 cores: three compiles (train step, greedy, beam search)
def test_tiny_t5_trains_decodes_and_scores_end_to_end(tmp_path, capsys):
    from scaling import translate

    data = tmp_path / "data"
    data.mkdir()
    train = write_tsv(data / "train.tsv", sentences(150))
    validation = write_tsv(data / "valid.tsv", sentences(12, offset=140))
    translation.register_translation_tasks("tiny_pairs", str(train), validation_glob=str(validation))
    workdir = tmp_path / "run"
    overrides = {
        "data.task": "tiny_pairs",
        "model.name": "tiny-nl1-dm32-ff64-nh2-kv16",
        "model.dtype": "float32",
        "data.inputs_length": 32,
        "data.targets_length": 32,
        "data.eval_batches": 1,
        "batch_size": 8,
        "optimizer.learning_rate": 1e-2,
        "budget": "steps:30",
        "log_every_steps": 10,
        "eval_every_steps": 15,
        "checkpoint.async_save": False,
        "translation.bleu_examples": 4,
        "translation.eval_examples": 4,
        "translation.beam": 1,  # the final evaluation reuses the greedy search compiled for eval_bleu
        "translation.max_length": 24,
        "translation.batch_size": 4,
    }
    argv = ["--config=configs/translate_offline.py", f"--workdir={workdir}"]
    assert translate.main(argv + [f"--config.{k}={v}" for k, v in overrides.items()]) == 0
    assert "BLEU" in capsys.readouterr().out
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    bleus = [r["eval_bleu"] for r in logged if "eval_bleu" in r]
    assert len(bleus) == 2 and all(0 <= b <= 100 for b in bleus)
    losses = [r["loss"] for r in logged if "loss" in r]
    assert losses[-1] < losses[0]
    assert json.loads((workdir / "summary.json").read_text())["bleu"]["signature"] == SIGNATURE
    final = json.loads((workdir / "bleu_tiny_pairs_validation.json").read_text())
    assert (final["step"], final["examples"], final["decoding"]["beam"]) == (30, 4, 1)

    out = tmp_path / "bleu.json"
    assert translate.main([f"--checkpoint={workdir}", "--beam=2", "--max_examples=6", f"--out={out}"]) == 0
    assert "BLEU" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert (result["task"], result["split"], result["examples"], result["signature"]) == (
        "tiny_pairs",
        "validation",
        6,
        SIGNATURE,
    )
    assert result["decoding"]["beam"] == 2 and result["decoding"]["max_length"] == 32  # the trained length
    hypotheses = [t["hypothesis"] for t in result["translations"]]
    references = [t["reference"] for t in result["translations"]]
    assert references == [translation.pseudo_french(s) for s in sentences(6, offset=140)]
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-9)


def test_help_documents_both_modes(capsys):
    from scaling import translate

    assert translate.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--checkpoint" in out and "--workdir" in out and "python -m scaling.translate" in out


def test_command_line_mistakes_are_one_line(tmp_path, capsys):
    from scaling import translate

    assert translate.main([]) == 2
    assert "either --config and --workdir" in capsys.readouterr().err
    assert translate.main(["--config=configs/translate_offline.py"]) == 2
    assert "--workdir" in capsys.readouterr().err
    assert translate.main([f"--checkpoint={tmp_path}", "--task=sotu_span_corruption"]) == 2
    assert "not a translation task" in capsys.readouterr().err
