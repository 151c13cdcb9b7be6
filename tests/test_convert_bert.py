"""Hugging Face BERT / RoBERTa masked LMs in and out against transformers' own (random weights, unusual shapes)."""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from scaling.convert import ConversionError, hf
from scaling.training import artifact

# Unusual sizes: vocabularies and lengths that are no power of two, heads of 16 and 10, three and two layers.
BERT = dict(
    vocab_size=301,
    hidden_size=48,
    num_hidden_layers=3,
    num_attention_heads=3,
    intermediate_size=80,
    max_position_embeddings=40,
    type_vocab_size=2,
)
ROBERTA = dict(
    vocab_size=277,
    hidden_size=40,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=72,
    max_position_embeddings=35,
    type_vocab_size=1,
    pad_token_id=1,
)
KINDS = {
    "bert": ("BertForMaskedLM", "BertConfig", BERT),
    "roberta": ("RobertaForMaskedLM", "RobertaConfig", ROBERTA),
    "roberta-prelayernorm": ("RobertaPreLayerNormForMaskedLM", "RobertaPreLayerNormConfig", ROBERTA),
}


def random_hf(path: Path, kind: str, seed: int = 0, **overrides):
    """A transformers masked LM in eval mode with every tensor perturbed (norms and biases not at their init)."""
    model_cls, config_cls, config = KINDS[kind]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**{**config, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path)
    return model


def padded_batch(vocab_size: int, pad: int, length: int = 17) -> np.ndarray:
    """Three rows, two right-padded; token 0 (BERT's pad, RoBERTa's <s>) and 1 appear as real tokens."""
    tokens = np.random.default_rng(0).integers(2, vocab_size, (3, length))
    tokens[:, 0] = 0 if pad else 2
    tokens[0, 3] = 1 - pad
    tokens[1, 12:], tokens[2, 5:] = pad, pad
    return tokens


def transformers_logits(model, tokens: np.ndarray, pad: int) -> np.ndarray:
    ids = torch.from_numpy(tokens)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=(ids != pad).long()).logits.numpy()


@pytest.mark.parametrize("kind", list(KINDS))
def test_logits_match_transformers_and_export_is_exact(tmp_path, kind):
    theirs = random_hf(tmp_path / "hf", kind)
    pad = theirs.config.pad_token_id
    model, shape = hf.load_bert(tmp_path / "hf")
    assert (shape.pad_id, shape.roberta_positions) == (pad, kind != "bert")
    assert shape.norm_position == ("pre" if kind == "roberta-prelayernorm" else "post")
    tokens = padded_batch(shape.vocab_size, pad)
    ours = model(jnp.asarray(tokens))
    assert ours.dtype == jnp.float32 and ours.shape == (*tokens.shape, shape.vocab_size)
    real = tokens != pad  # logits at pad positions are not meaningful (transformers lets pads attend)
    expected = transformers_logits(theirs, tokens, pad)
    assert np.abs(np.asarray(ours) - expected)[real].max() < 1e-4

    out = hf.export_bert(model, shape, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["model_type"] == kind
    again = type(theirs).from_pretrained(out).eval()
    before, after = theirs.state_dict(), again.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    np.testing.assert_array_equal(transformers_logits(again, tokens, pad), expected)


def test_untied_decoder_round_trips(tmp_path):
    theirs = random_hf(tmp_path / "hf", "roberta", tie_word_embeddings=False)
    model, shape = hf.load_bert(tmp_path / "hf")
    assert not shape.tie_embeddings
    tokens = padded_batch(shape.vocab_size, 1)
    real = tokens != 1
    assert np.abs(np.asarray(model(jnp.asarray(tokens))) - transformers_logits(theirs, tokens, 1))[real].max() < 1e-4
    again = type(theirs).from_pretrained(hf.export_bert(model, shape, tmp_path / "out"))
    # untied, transformers computes with lm_head.decoder.bias; lm_head.bias is unused, and exported equal to it
    after = again.state_dict()
    assert torch.equal(after["lm_head.bias"], theirs.state_dict()["lm_head.decoder.bias"])
    assert all(torch.equal(v, after[k]) for k, v in theirs.state_dict().items() if k != "lm_head.bias")


def test_command_line_import_and_export_round_trip(tmp_path, capsys):
    from scaling.convert.__main__ import main as convert_main

    theirs = random_hf(tmp_path / "hf", "bert")
    capsys.readouterr()
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert artifact.load_shape(tmp_path / "ours").family == "bert"
    assert convert_main(["export-hf", str(tmp_path / "ours"), str(tmp_path / "out")]) == 0
    again = transformers.BertForMaskedLM.from_pretrained(tmp_path / "out")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in theirs.state_dict().items())


def test_unsupported_variants_fail_in_one_line(tmp_path, capsys):
    from scaling.convert.__main__ import main as convert_main

    random_hf(tmp_path / "hf", "bert", position_embedding_type="relative_key")
    with pytest.raises(ConversionError, match="position_embedding_type 'relative_key' is not supported"):
        hf.load_bert(tmp_path / "hf")
    capsys.readouterr()
    assert convert_main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "relative_key" in err, err
    # our crammed BERT (no biases, sinusoidal positions, GLU) has no Hugging Face counterpart
    from flax import nnx

    from scaling import models, shapes

    crammed = shapes.parse("crammed-bert-nl1-dm64-nh2-ff128", vocab_size=100)
    with pytest.raises(ConversionError, match="no Hugging Face BERT/RoBERTa computes"):
        hf.export_bert(models.build(crammed, rngs=nnx.Rngs(0)), crammed, tmp_path / "out")
