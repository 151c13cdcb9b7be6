"""Hugging Face T5 import and export against transformers' own PyTorch T5 (random weights, tiny shapes)."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file, save_file

from scaling.convert import ConversionError, hf
from scaling.convert.params import flat_arrays, infer_shape
from scaling.data import vocab
from scaling.training import artifact

# d_kv × heads ≠ d_model in both; encoder depth ≠ decoder depth in both.
V1_0 = {
    "vocab_size": 160,
    "d_model": 32,
    "d_kv": 8,
    "num_heads": 3,
    "d_ff": 48,
    "num_layers": 2,
    "num_decoder_layers": 1,
}
V1_1 = {
    "vocab_size": 192,
    "d_model": 32,
    "d_kv": 16,
    "num_heads": 4,
    "d_ff": 40,
    "num_layers": 1,
    "num_decoder_layers": 2,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}


def random_hf(path: Path, seed: int = 0, gain: float = 1.0, **config) -> "transformers.T5ForConditionalGeneration":
    """A transformers T5 with unit-scale weights (×`gain` in the layers: 2 makes greedy decodes vary), saved."""
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(dropout_rate=0.0, **config)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" not in name:
                p.normal_(0.0, 1.0 if "shared" in name or "relative" in name else gain * p.shape[-1] ** -0.5)
        if config.get("tie_word_embeddings") is False:  # transformers 5 ties in memory; a distinct head unties
            model.lm_head.weight = torch.nn.Parameter(torch.randn(config["vocab_size"], config["d_model"]))
            model.lm_head.weight[1] *= 4
        model.shared.weight[1] *= 4  # a long EOS vector: EOS wins some argmaxes, so decodes stop at varied lengths
    model.save_pretrained(path)
    return model


def inputs(vocab_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    enc = rng.randint(2, vocab_size, (3, 9)).astype(np.int32)
    enc[1, 6:] = 0  # padding
    dec = rng.randint(2, vocab_size, (3, 5)).astype(np.int32)
    dec[:, 0] = 0
    return enc, dec


def ours_logits(model, enc, dec) -> np.ndarray:
    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda s, a, b: nnx.merge(graphdef, s)(a, b))(state, enc, dec))


def hf_logits(model, enc, dec) -> np.ndarray:
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(enc, dtype=torch.long),
            attention_mask=torch.tensor(enc != 0),
            decoder_input_ids=torch.tensor(dec, dtype=torch.long),
        ).logits.numpy()


@pytest.mark.parametrize(
    "config,name", [(V1_0, "tiny-el2-dl1-dm32-ff48-nh3-kv8"), (V1_1, "tiny-el1-dl2-dm32-ff40-kv16-v1_1")]
)
def test_import_matches_transformers_and_export_round_trips(tmp_path, config, name):
    peer = random_hf(tmp_path / "hf", **config)
    model, shape = hf.load_t5(tmp_path / "hf")
    assert shape.name == name and shape.tie_embeddings == ("tie_word_embeddings" not in config)
    enc, dec = inputs(config["vocab_size"])
    expected = hf_logits(peer, enc, dec)
    got = ours_logits(model, enc, dec)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)

    hf.export(model, tmp_path / "out")
    again = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    np.testing.assert_allclose(hf_logits(again, enc, dec), expected, atol=1e-4, rtol=0)
    reimported, reshape = hf.load_t5(tmp_path / "out")
    assert reshape == shape
    for path, array in flat_arrays(model).items():
        np.testing.assert_array_equal(flat_arrays(reimported)[path], array, err_msg=path)


def test_released_style_config_and_other_weight_files(tmp_path):
    """Released configs omit tie_word_embeddings (= tied, scaled) and the max distance; older weight files are
    pytorch_model.bin (with tied copies of the embedding) or flax_model.msgpack."""
    peer = random_hf(tmp_path / "hf", seed=1, relative_attention_num_buckets=16, **V1_0)
    config = json.loads((tmp_path / "hf/config.json").read_text())
    for key in ("tie_word_embeddings", "scale_decoder_outputs", "relative_attention_max_distance"):
        config.pop(key)
    (tmp_path / "hf/config.json").write_text(json.dumps(config))
    enc, dec = inputs(V1_0["vocab_size"], seed=1)
    expected = hf_logits(peer, enc, dec)
    model, shape = hf.load_t5(tmp_path / "hf")
    assert shape.tie_embeddings and shape.relpos_buckets == 16 and shape.relpos_max_distance == 128
    np.testing.assert_allclose(ours_logits(model, enc, dec), expected, atol=1e-4, rtol=0)

    tensors = load_file(tmp_path / "hf/model.safetensors")
    (tmp_path / "hf/model.safetensors").unlink()
    bin_tensors = {k: torch.from_numpy(v) for k, v in tensors.items()}
    bin_tensors["encoder.embed_tokens.weight"] = bin_tensors["shared.weight"]  # old files carry tied copies
    torch.save(bin_tensors, tmp_path / "hf/pytorch_model.bin")
    model, _ = hf.load_t5(tmp_path / "hf")
    np.testing.assert_allclose(ours_logits(model, enc, dec), expected, atol=1e-4, rtol=0)

    import flax.serialization
    import flax.traverse_util

    (tmp_path / "hf/pytorch_model.bin").unlink()
    flax_tree = {}
    for k, v in tensors.items():
        stem = k.rsplit(".", 1)[0]
        if "relative_attention_bias" in k or k == "shared.weight":
            flax_tree[f"{stem}.embedding"] = v
        elif "layer_norm" in k:
            flax_tree[k] = v
        else:
            flax_tree[f"{stem}.kernel"] = v.T
    (tmp_path / "hf/flax_model.msgpack").write_bytes(
        flax.serialization.msgpack_serialize(flax.traverse_util.unflatten_dict(flax_tree, sep="."))
    )
    model, _ = hf.load_t5(tmp_path / "hf")
    np.testing.assert_allclose(ours_logits(model, enc, dec), expected, atol=1e-4, rtol=0)


def test_shape_names_come_from_the_config_not_the_nominal_name():
    common = {
        "vocab_size": 32128,
        "ffn_activation": "relu",
        "ffn_gating": "none",
        "tie_embeddings": True,
        "dropout_rate": 0.1,
    }
    small24 = infer_shape(
        "x", num_encoder_layers=24, num_decoder_layers=24, d_model=512, d_ff=2048, num_heads=8, d_kv=64, **common
    )
    assert small24.name == "small-nl24"
    base_ff2000 = infer_shape(
        "x", num_encoder_layers=12, num_decoder_layers=12, d_model=768, d_ff=2048, num_heads=12, d_kv=64, **common
    )
    assert base_ff2000.name == "base-ff2k"


def _rewrite(path: Path, change) -> None:
    tensors = load_file(path / "model.safetensors")
    change(tensors)
    save_file(tensors, path / "model.safetensors")


def test_bad_inputs_fail_with_the_tensor_or_field_named(tmp_path):
    random_hf(tmp_path / "hf", **V1_0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.load_t5(tmp_path / "nowhere")
    good = tmp_path / "hf"

    def variant(name, change=None, config_change=None) -> Path:
        path = tmp_path / name
        shutil.copytree(good, path)
        if change:
            _rewrite(path, change)
        if config_change:
            config = json.loads((path / "config.json").read_text())
            config_change(config)
            (path / "config.json").write_text(json.dumps(config))
        return path

    key = "encoder.block.1.layer.1.DenseReluDense.wo.weight"
    with pytest.raises(ConversionError, match=rf"{key}.*shape \[32, 47\], expected \[32, 48\]"):
        hf.load_t5(variant("short", lambda t: t.update({key: t[key][:, :47].copy()})))
    with pytest.raises(ConversionError, match=rf"missing tensor '{key}'"):
        hf.load_t5(variant("missing", lambda t: t.pop(key)))
    with pytest.raises(ConversionError, match=r"unexpected tensor\(s\) \['encoder.block.2"):
        hf.load_t5(variant("extra", lambda t: t.update({"encoder.block.2.layer.0.layer_norm.weight": t[key][0]})))
    with pytest.raises(ConversionError, match="feed_forward_proj 'gated-silu'"):
        hf.load_t5(variant("silu", config_change=lambda c: c.update(feed_forward_proj="gated-silu")))
    with pytest.raises(ConversionError, match=r"missing field\(s\) \['d_ff'\]"):
        hf.load_t5(variant("noff", config_change=lambda c: c.pop("d_ff")))
    noweights = variant("noweights")
    (noweights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        hf.load_t5(noweights)


def test_command_line_import_train_and_export(tmp_path, capsys):
    """import-hf → train 2 steps from it (learning rate 1e-9) → export-hf of the workdir = the original model."""
    from test_trainer import quiet, tiny_config

    from scaling.convert.__main__ import main as convert_main
    from scaling.training import trainer

    shape = {"vocab_size": 8192, "d_model": 32, "d_kv": 16, "num_heads": 2, "d_ff": 64, "num_layers": 1}
    peer = random_hf(tmp_path / "hf", **shape)
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert "tiny-nl1-dm32-ff64-nh2-kv16" in capsys.readouterr().out
    assert artifact.load_shape(tmp_path / "ours").vocab_size == 8192
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 2  # never overwrites
    assert "already holds a model" in capsys.readouterr().err

    config = tiny_config(**{"init_from": str(tmp_path / "ours"), "budget.amount": 2, "optimizer.learning_rate": 1e-9})
    trainer.train(config, tmp_path / "work", print_fn=quiet)
    assert convert_main(["export-hf", str(tmp_path / "work"), str(tmp_path / "out")]) == 0
    assert "tiny-nl1-dm32-ff64-nh2-kv16" in capsys.readouterr().out
    # The workdir's vocabulary is its data task's, so the export carries it for transformers' tokenizer.
    assert (tmp_path / "out/spiece.model").read_bytes() == vocab.DEFAULT_SPM_PATH.read_bytes()
    exported = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    enc, dec = inputs(8192)
    np.testing.assert_allclose(hf_logits(exported, enc, dec), hf_logits(peer, enc, dec), atol=1e-5, rtol=0)

    wrong = tiny_config(**{"init_from": str(tmp_path / "ours"), "model.name": "tiny-nl1-dm32-ff64-nh4-kv16"})
    with pytest.raises(trainer.ConfigError, match=r"num_heads \(saved 2, configured 4\)"):
        trainer.train(wrong, tmp_path / "work2", print_fn=quiet)


# ------------------------------------------------------------------------- export for transformers, hub caches

TINY_8K = {"vocab_size": 8192, "d_model": 32, "d_kv": 16, "num_heads": 2, "d_ff": 64, "num_layers": 1}
SENTENCES = [
    "The President of the United States walks in the park, 1234 times!",
    "  Several   spaces, and   a trailing one ",
    "Ünïcödé ﬁ ligatures ½ and the <extra_id_0> sentinel",
]


def test_export_loads_in_transformers_and_generates_as_we_decode(tmp_path, capsys):
    """export-hf writes what AutoTokenizer, from_pretrained and generate need, offline: the tokenizer encodes as
    our vocabulary does and `generate` (its settings from generation_config.json) equals our greedy decode."""
    from scaling.convert import tokenizer
    from scaling.convert.__main__ import main as convert_main
    from scaling.downstream import decode

    random_hf(tmp_path / "hf", seed=2, gain=2.0, **TINY_8K)
    shutil.copy(vocab.DEFAULT_SPM_PATH, tmp_path / "hf/spiece.model")
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert convert_main(["export-hf", str(tmp_path / "ours"), str(tmp_path / "out")]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    for name in ("config.json", "generation_config.json", "model.safetensors", *tokenizer.HF_TOKENIZER_FILES):
        assert (out / name).is_file(), name
    assert json.loads((out / "generation_config.json").read_text()) == {
        "decoder_start_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 0,
    }
    # What transformers itself builds from the same spiece.model (its T5 converter), byte for byte.
    (tmp_path / "spm").mkdir()
    shutil.copy(vocab.DEFAULT_SPM_PATH, tmp_path / "spm/spiece.model")
    transformers.T5TokenizerFast.from_pretrained(tmp_path / "spm").save_pretrained(tmp_path / "theirs")
    assert json.loads((out / "tokenizer.json").read_text()) == json.loads(
        (tmp_path / "theirs/tokenizer.json").read_text()
    )

    loaded = artifact.load(tmp_path / "ours")
    ours_vocabulary = loaded.vocabulary
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert len(tok) == ours_vocabulary.vocab_size == 8100
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok.convert_tokens_to_ids("<extra_id_0>") == 8099 and tok.convert_tokens_to_ids("<extra_id_99>") == 8000
    for text in SENTENCES:
        assert tok(text).input_ids == ours_vocabulary.encode(text) + [vocab.EOS_ID], text
    # Without tokenizer.json, transformers builds the same tokenizer from spiece.model and the config files.
    slow = tmp_path / "without_json"
    shutil.copytree(out, slow)
    (slow / "tokenizer.json").unlink()
    assert transformers.AutoTokenizer.from_pretrained(slow)(SENTENCES).input_ids == tok(SENTENCES).input_ids

    model = transformers.T5ForConditionalGeneration.from_pretrained(out).eval()
    assert model.generation_config.decoder_start_token_id == 0 and model.generation_config.eos_token_id == 1
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    steps = 12
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=steps, do_sample=False, num_beams=1).numpy()
    assert (generated[:, 0] == 0).all()  # started from decoder_start_token_id without being told
    theirs = np.pad(generated[:, 1:], ((0, 0), (0, steps + 1 - generated.shape[1])))
    theirs = np.where(np.cumsum(np.cumsum(theirs == 1, axis=1), axis=1) > 1, 0, theirs)  # pad after EOS
    ours = np.asarray(decode.greedy(loaded.model(), batch.input_ids.numpy().astype(np.int32), steps))
    np.testing.assert_array_equal(ours, theirs)
    assert len(np.unique(ours)) > 5  # varied outputs: a real check
    assert all(isinstance(text, str) for text in tok.batch_decode(generated, skip_special_tokens=True))


def test_export_of_a_model_without_vocabulary_warns_and_writes_the_model(tmp_path, caplog):
    from scaling.convert.__main__ import export_hf, import_hf

    random_hf(tmp_path / "hf", **TINY_8K)
    import_hf(tmp_path / "hf", tmp_path / "ours")
    out = export_hf(tmp_path / "ours", tmp_path / "out")
    assert (out / "generation_config.json").is_file() and not (out / "spiece.model").exists()
    assert "holds no tokenizer; pass --vocabulary" in caplog.text
    # --vocabulary supplies one.
    out = export_hf(tmp_path / "ours", tmp_path / "out2", vocabulary=vocab.DEFAULT_SPM_PATH)
    assert transformers.AutoTokenizer.from_pretrained(out)("a walk").input_ids[-1] == 1


def test_truncated_weights_are_one_line_naming_the_file(tmp_path, capsys):
    from scaling.convert.__main__ import main as convert_main

    random_hf(tmp_path / "hf", **V1_0)
    weights = tmp_path / "hf/model.safetensors"
    data = weights.read_bytes()
    for cut in (len(data) - 100, 40, 3):
        weights.write_bytes(data[:cut])
        with pytest.raises(ConversionError, match=rf"{weights} is unreadable \(.*\): truncated or corrupt"):
            hf.load_t5(tmp_path / "hf")
    capsys.readouterr()  # transformers' save progress bar
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(weights) in err, err
    assert not (tmp_path / "ours").exists()

    weights.unlink()
    torch.save({"shared.weight": torch.zeros(4, 4)}, tmp_path / "hf/pytorch_model.bin")
    data = (tmp_path / "hf/pytorch_model.bin").read_bytes()
    (tmp_path / "hf/pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=r"pytorch_model.bin is unreadable .*truncated or corrupt"):
        hf.load_t5(tmp_path / "hf")

    (tmp_path / "hf/pytorch_model.bin").unlink()
    (tmp_path / "hf/model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "shard-1.safetensors"}}))
    with pytest.raises(FileNotFoundError, match="shard-1.safetensors not found"):
        hf.load_t5(tmp_path / "hf")


def _hub_cache_entry(root: Path, source: Path, commit: str) -> Path:
    """`source`'s files laid out as the hub cache does: blobs/<sha256>, snapshots/<commit>/NAME → ../../blobs/…
    (relative links), refs/main naming the commit. Returns the snapshot directory."""
    import hashlib

    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for f in sorted(source.iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, root / "blobs" / digest)
        (snapshot / f.name).symlink_to(Path("../../blobs") / digest)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs/main").write_text(commit)
    return snapshot


def test_hub_cache_snapshots_import_as_they_are(tmp_path, capsys):
    """`huggingface-cli download` leaves models--org--name/{blobs,refs/main,snapshots/<commit>/links}; both the
    entry and the snapshot import, at the snapshot refs/main names, with the tokenizer kept."""
    from scaling.convert.__main__ import main as convert_main

    random_hf(tmp_path / "hf", **TINY_8K)
    shutil.copy(vocab.DEFAULT_SPM_PATH, tmp_path / "hf/spiece.model")
    root = tmp_path / "hub/models--google--t5-efficient-tiny"
    older = _hub_cache_entry(root, tmp_path / "hf", "0" * 40)
    (older / "config.json").unlink()  # an older revision: not the one refs/main names below
    snapshot = _hub_cache_entry(root, tmp_path / "hf", "f" * 40)
    assert (snapshot / "model.safetensors").is_symlink()

    for name, source in (("from_snapshot", snapshot), ("from_entry", root)):
        assert convert_main(["import-hf", str(source), str(tmp_path / name)]) == 0, capsys.readouterr().err
        loaded = artifact.load(tmp_path / name)
        assert loaded.provenance["source"] == str(snapshot.absolute())
        assert loaded.provenance["vocabulary"] == "spiece.model"
        assert artifact.vocabulary_bytes(loaded.vocabulary) == vocab.DEFAULT_SPM_PATH.read_bytes()
    a, b = (flat_arrays(artifact.load(tmp_path / n).model()) for n in ("from_snapshot", "from_entry"))
    for path, array in a.items():
        np.testing.assert_array_equal(b[path], array, err_msg=path)

    # An interrupted download leaves a link to a blob that is not there: one line naming it.
    (root / "blobs" / (snapshot / "model.safetensors").readlink().name).unlink()
    capsys.readouterr()
    assert convert_main(["import-hf", str(root), str(tmp_path / "broken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors: a link to a missing blob" in err, err
