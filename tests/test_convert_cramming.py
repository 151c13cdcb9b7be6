"""Cramming's crammed-bert checkpoint layout in: config.json / model_config.json and cramming's state-dict names,
against cramming's forward pass re-derived here in torch from its repository (never from our model's code).

Run as a script, this file writes such a checkpoint (random weights) for trying the import by hand:

    python tests/test_convert_cramming.py DIR [--full] [--check] [--tokenizer]

`--full` writes the released size (cramming's arch=crammed-bert: 16 layers, 768 wide, vocabulary 32768); `--check`
then imports DIR and prints the largest logit difference from the torch forward pass below; `--tokenizer` ships
a tokenizer.json the import keeps (the shipped sentencepiece model's), so that the import can be finetuned.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
F = torch.nn.functional

from scaling import cli, shapes
from scaling.convert import ConversionError, cramming
from scaling.convert import tokenizer as tokenizer_lib
from scaling.data import vocab as vocab_lib

ROOT = Path(__file__).resolve().parents[1]

# cramming/config/arch/crammed-bert.yaml as the hub's config.json holds it: resolved by OmegaConf, the embedding's
# vocab_size filled in by construct_crammed_bert, sparse_prediction = train=bert-o4's mlm_probability.
RELEASED_ARCH = {
    "architectures": ["ScriptableCrammedBERT"],
    "num_transformer_layers": 16,
    "hidden_size": 768,
    "intermed_size": 3072,
    "hidden_dropout_prob": 0.1,
    "norm": "LayerNorm",
    "norm_eps": 1e-12,
    "norm_scheme": "pre",
    "nonlin": "GELUglu",
    "tie_weights": True,
    "decoder_bias": False,
    "sparse_prediction": 0.25,
    "loss": "cross-entropy",
    "objective_layout": "MLM",
    "embedding": {
        "vocab_size": 32768,
        "pos_embedding": "scaled-sinusoidal",
        "dropout_prob": 0.1,
        "pad_token_id": 0,
        "max_seq_length": 128,
        "embedding_dim": 768,
        "normalization": True,
        "stable_low_precision": False,
    },
    "attention": {
        "type": "self-attention",
        "causal_attention": False,
        "num_attention_heads": 12,
        "dropout_prob": 0.1,
        "skip_output_projection": False,
        "qkv_bias": False,
        "rotary_embedding": False,
        "seq_op_in_fp32": False,
        "sequence_op": "torch-softmax",
    },
    "init": {"type": "normal", "std": 0.02},
    "ffn_layer_frequency": 1,
    "skip_head_transform": True,
    "use_bias": False,
    "final_norm": True,
    "num_labels": None,
    "classification_head": {
        "pooler": "avg",
        "include_ff_layer": True,
        "head_dim": 1024,
        "nonlin": "Tanh",
        "classifier_dropout": 0.1,
    },
}


def arch(**changes) -> dict:
    """A tiny arch (unusual sizes: 3 heads of 16, FFN 80, vocabulary 301) with `changes` (`attention__qkv_bias`
    for nested settings) applied to the released one."""
    out = copy.deepcopy(RELEASED_ARCH)
    tiny = dict(num_transformer_layers=2, hidden_size=48, intermed_size=80, attention__num_attention_heads=3)
    tiny |= dict(embedding__vocab_size=301, embedding__embedding_dim=48, embedding__max_seq_length=40)
    for key, value in (tiny | changes).items():
        *sections, leaf = key.split("__")
        target = out
        for section in sections:
            target = target[section]
        target[leaf] = value
    return out


def random_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A `ScriptableLMForPreTraining.state_dict()` for `cfg`: cramming's module names, every tensor random (norms
    and biases away from their init), buffers as cramming registers them."""
    gen = torch.Generator().manual_seed(seed)
    d, n, f = cfg["hidden_size"], cfg["num_transformer_layers"], cfg["intermed_size"]
    heads, emb = cfg["attention"]["num_attention_heads"], cfg["embedding"]
    v = emb["vocab_size"]
    glu = "glu" in cfg["nonlin"].lower()
    use_bias, qkv_bias = cfg["use_bias"], cfg["attention"]["qkv_bias"]
    randn = lambda *size, scale=0.1: torch.randn(*size, generator=gen) * scale
    state = {}

    def linear(prefix: str, out_dim: int, in_dim: int, bias: bool) -> None:
        state[f"{prefix}.weight"] = randn(out_dim, in_dim, scale=in_dim**-0.5)
        if bias:
            state[f"{prefix}.bias"] = randn(out_dim)

    def norm(prefix: str) -> None:
        if cfg["norm"] == "RMSNorm":
            state[f"{prefix}.learnable_scale"] = 1 + randn(d)
        else:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = 1 + randn(d), randn(d)

    state["encoder.embedding.word_embedding.weight"] = randn(v, d, scale=1.0)
    pos = "encoder.embedding.pos_embedding"
    if emb["pos_embedding"] == "scaled-sinusoidal":
        state[f"{pos}.scale_factor"] = torch.tensor([d**-0.5]) * (1 + randn(1))
    elif emb["pos_embedding"] == "learned":
        state[f"{pos}.embedding.weight"] = randn(emb["max_seq_length"], d, scale=1.0)
        state[f"{pos}.position_ids"] = torch.arange(emb["max_seq_length"]).expand((1, -1))
    if emb["normalization"]:
        norm("encoder.embedding.norm")
    for i in range(n):
        b = f"encoder.layers.{i}"
        norm(f"{b}.norm1")
        norm(f"{b}.norm2")
        linear(f"{b}.attn.self_attention.query_key_value", 3 * d, d, qkv_bias)
        state[f"{b}.attn.self_attention.norm_factor"] = torch.tensor(d // heads).rsqrt()
        linear(f"{b}.attn.dense", d, d, use_bias)
        linear(f"{b}.ffn.dense_in", f, d, use_bias)
        linear(f"{b}.ffn.dense_out", d, f // 2 if glu else f, use_bias)
    if cfg["final_norm"]:
        norm("encoder.final_norm")
    if not cfg["skip_head_transform"] or cfg["objective_layout"] == "SCRIPT":
        linear("prediction_head.dense", d, d, use_bias)
        norm("prediction_head.norm")
    state["decoder.weight"] = state["encoder.embedding.word_embedding.weight"]  # tied, as crammed_bert.py does
    if cfg["decoder_bias"]:
        state["decoder.bias"] = randn(v)
    return state


def write_checkpoint(
    directory: Path, cfg: dict, *, seed: int = 0, weights: str = "safetensors", layout: str = "hub", tied_copy=True
) -> dict[str, torch.Tensor]:
    """Writes a checkpoint as cramming does and returns its state dict. layout "hub": config.json as
    `push_to_hub` (transformers' save_pretrained of crammedBertConfig) writes it; "local": `save_final_model`'s
    model_config.json (the arch itself, its vocab_size left empty). Weights cloned per tensor, as cramming's
    `retrieve_model_state_dict` does before saving; `tied_copy=False` leaves out the embedding (only
    decoder.weight), a save cramming's own loader accepts."""
    state = random_state(cfg, seed)
    saved = {k: v.clone().contiguous() for k, v in state.items()}
    if not tied_copy:
        del saved["encoder.embedding.word_embedding.weight"]
    directory.mkdir(parents=True, exist_ok=True)
    if weights == "safetensors":
        safetensors_torch.save_file(saved, str(directory / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(saved, directory / "pytorch_model.bin")
    if layout == "hub":
        config = {
            "arch": cfg,
            "architectures": ["ScriptableLMForPreTraining"],
            "model_type": "crammedBERT",
            "torch_dtype": "float32",
            "transformers_version": "4.30.2",
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2))
    else:
        local = copy.deepcopy(cfg)
        local["embedding"]["vocab_size"] = None
        (directory / "model_config.json").write_text(json.dumps(local))
    return state


def write_t5_style_tokenizer(directory: Path) -> None:
    """The shipped sentencepiece model's tokenizer.json as transformers' T5 tokenizer saves it (pieces, then 100
    sentinels: vocab_size 8100), the file cramming's `tokenizer.save_pretrained` leaves for such a tokenizer."""
    files = tokenizer_lib.hf_tokenizer_files(vocab_lib.DEFAULT_SPM_PATH.read_bytes())
    (directory / tokenizer_lib.TOKENIZER_JSON).write_bytes(files[tokenizer_lib.TOKENIZER_JSON])


def cramming_logits(state: dict[str, torch.Tensor], cfg: dict, input_ids: np.ndarray) -> np.ndarray:
    """`ScriptableLMForPreTraining(input_ids, attention_mask)["outputs"]` in eval mode without labels, from
    cramming's crammed_bert.py, components.py, embeddings.py and attention.py (SeqFirstSelfAttention,
    TorchSoftmax), batch-first here (the same arithmetic), attention_mask = input_ids != pad_token_id."""
    ids = torch.from_numpy(input_ids)
    batch, length = ids.shape
    d, heads = cfg["hidden_size"], cfg["attention"]["num_attention_heads"]
    per_head, eps, emb = d // heads, cfg["norm_eps"], cfg["embedding"]
    act = {"GELU": F.gelu, "ReLU": F.relu}[cfg["nonlin"].split("glu")[0]]  # _get_nonlin_fn

    def norm(prefix: str, x: torch.Tensor) -> torch.Tensor:
        if cfg["norm"] == "RMSNorm":  # components.RMSNorm
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * state[f"{prefix}.learnable_scale"]
        return F.layer_norm(x, (d,), state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps)

    def linear(prefix: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, state[f"{prefix}.weight"], state.get(f"{prefix}.bias"))

    with torch.no_grad():
        x = F.embedding(ids, state["encoder.embedding.word_embedding.weight"])
        if emb["pos_embedding"] == "learned":
            x = x + state["encoder.embedding.pos_embedding.embedding.weight"][:length]
        else:  # embeddings.SinusoidalPositional / ScaledSinosoidal
            pe = torch.zeros(emb["max_seq_length"], d)
            position = torch.arange(0, emb["max_seq_length"], dtype=torch.float).unsqueeze(1)
            div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            if emb["pos_embedding"] == "scaled-sinusoidal":
                pe = state["encoder.embedding.pos_embedding.scale_factor"] * pe
            x = x + pe[:length]
        if emb["normalization"]:
            x = norm("encoder.embedding.norm", x)
        mask = (1.0 - (ids != emb["pad_token_id"]).float()[:, None, None, :]) * -10000.0  # get_extended_attention_mask
        for i in range(cfg["num_transformer_layers"]):
            b = f"encoder.layers.{i}"
            qkv = linear(f"{b}.attn.self_attention.query_key_value", norm(f"{b}.norm1", x))
            q, k, v = torch.split(qkv.view(batch, length, heads, 3 * per_head), [per_head] * 3, dim=3)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * torch.tensor(per_head).rsqrt()
            context = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores + mask, dim=-1), v)
            x = x + linear(f"{b}.attn.dense", context.reshape(batch, length, d))
            hidden = linear(f"{b}.ffn.dense_in", norm(f"{b}.norm2", x))
            if "glu" in cfg["nonlin"].lower():  # components.GLU
                hidden, gate = hidden.chunk(2, dim=-1)
                hidden = act(gate) * hidden
            else:
                hidden = act(hidden)
            x = x + linear(f"{b}.ffn.dense_out", hidden)
        if cfg["final_norm"]:
            x = norm("encoder.final_norm", x)
        if not cfg["skip_head_transform"] or cfg["objective_layout"] == "SCRIPT":  # PredictionHeadComponent
            x = norm("prediction_head.norm", act(linear("prediction_head.dense", x)))
        return F.linear(x, state["decoder.weight"], state.get("decoder.bias")).numpy()


def padded_batch(vocab_size: int, length: int = 17) -> np.ndarray:
    """Three rows, two right-padded with 0 (cramming's pad_token_id)."""
    tokens = np.random.default_rng(0).integers(1, vocab_size, (3, length))
    tokens[1, 12:], tokens[2, 5:] = 0, 0
    return tokens


def differences(model, state, cfg, tokens: np.ndarray) -> tuple[float, float]:
    """(largest |our logit - cramming's|, largest |cramming's logit|) over non-pad positions (logits at pads are
    not meaningful)."""
    ours = np.asarray(model(jnp.asarray(tokens)))
    theirs = cramming_logits(state, cfg, tokens)
    real = tokens != cfg["embedding"]["pad_token_id"]
    return float(np.abs(ours - theirs)[real].max()), float(np.abs(theirs)[real].max())


VARIANTS = {
    # the release's settings at a tiny size: no biases, GLU, scaled sinusoidal, norm after embedding and at the end
    "released": (arch(), {}),
    # every bias, the head transform, plain GELU, learned positions, RMS norms, no embedding or final norm; a
    # pytorch_model.bin holding only the decoder's copy of the tied embedding
    "biases-learned-rms": (
        arch(
            use_bias=True,
            attention__qkv_bias=True,
            decoder_bias=True,
            skip_head_transform=False,
            nonlin="GELU",
            embedding__pos_embedding="learned",
            norm="RMSNorm",
            norm_eps=1e-6,
            embedding__normalization=False,
            final_norm=False,
        ),
        dict(weights="bin", tied_copy=False),
    ),
    # dense biases without q/k/v biases, a ReLU GLU, unscaled sinusoids, cramming's own local save
    "relu-glu-sinusoidal-local": (
        arch(use_bias=True, nonlin="ReLUglu", embedding__pos_embedding="sinusoidal"),
        dict(layout="local"),
    ),
    # SCRIPT pretraining keeps its prediction head whatever skip_head_transform says
    "script": (arch(objective_layout="SCRIPT", attention__qkv_bias=True), {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_logits_match_crammings_forward(tmp_path, variant):
    cfg, options = VARIANTS[variant]
    state = write_checkpoint(tmp_path / "ckpt", cfg, **options)
    model, shape = cramming.load(tmp_path / "ckpt")
    assert shape.preset == "crammed-bert" and shape.vocab_size == 301 and shape.norm_position == "pre"
    tokens = padded_batch(shape.vocab_size)
    logits = model(jnp.asarray(tokens))
    assert logits.dtype == jnp.float32 and logits.shape == (*tokens.shape, 301)
    assert differences(model, state, cfg, tokens)[0] < 1e-4


def test_released_config_is_our_crammed_bert_preset():
    """The released arch maps onto the crammed-bert preset; it differs only in GELU flavour and dropout."""
    shape = cramming.shape_from_config(RELEASED_ARCH, "config.json")
    preset = shapes.BERT_PRESETS["crammed-bert"]
    assert shape.name == "crammed-bert"
    differs = {
        field: (getattr(preset, field), getattr(shape, field))
        for field in (f.name for f in dataclasses.fields(shape))
        if getattr(preset, field) != getattr(shape, field)
    }
    # cramming's torch.nn.GELU is the erf GELU (our preset trains the tanh one); hidden_dropout_prob 0.1
    assert differs == {"ffn_activation": ("gelu", "gelu_exact"), "dropout_rate": (0.0, 0.1)}


def _config(directory: Path) -> dict:
    return json.loads((directory / "config.json").read_text())


def _rewrite(directory: Path, change) -> None:
    config = _config(directory)
    change(config)
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["arch"]["attention"].update(flash=True), r"arch setting\(s\) \['attention.flash'\] unknown"),
        (lambda c: c["arch"].update(recurrent=2), r"\['recurrent'\] unknown"),
        (lambda c: c["arch"]["attention"].update(type="fourier"), "arch.attention.type = 'fourier' is not expr"),
        (lambda c: c["arch"]["attention"].update(rotary_embedding=True), "arch.attention.rotary_embedding = True"),
        (lambda c: c["arch"]["attention"].update(causal_attention=True), "arch.attention.causal_attention = True"),
        (lambda c: c["arch"].update(norm="ScaleNorm"), "arch.norm = 'ScaleNorm' is not expressible"),
        (lambda c: c["arch"].update(nonlin="SiLUglu"), "arch.nonlin = 'SiLUglu' is not expressible"),
        (lambda c: c["arch"].update(norm_scheme="post"), "crammed_bert.py always computes norm_scheme = 'pre'"),
        (lambda c: c["arch"]["embedding"].update(pos_embedding=None), "arch.embedding.pos_embedding = None"),
        (lambda c: c["arch"].update(architectures=["ScriptableFunnelLM"]), "arch.architectures = \\['Scripta"),
        (lambda c: c["arch"].update(hidden_size="${arch.width}"), "arch.hidden_size = '\\$\\{arch.width\\}'"),
        (lambda c: c.update(architectures=["ScriptableLMForSequenceClassification"]), "a finetuned cramming model"),
        # the config and the tensors disagree: the tensor is named with both shapes
        (
            lambda c: c["arch"].update(intermed_size=96),
            r"'encoder.layers.0.ffn.dense_in.weight' has shape \[80, 48\], expected \[96, 48\]",
        ),
        (lambda c: c["arch"].update(use_bias=True), "missing tensor 'encoder.layers.0.attn.dense.bias'"),
        (lambda c: c["arch"]["attention"].update(qkv_bias=True), "missing tensor 'encoder.layers.0.attn.self_att"),
        (lambda c: c["arch"].update(final_norm=False), r"unexpected tensor\(s\) \['encoder.final_norm.bias'"),
    ],
)
def test_what_our_bert_cannot_compute_is_refused_by_name(tmp_path, change, message):
    write_checkpoint(tmp_path / "ckpt", arch())
    _rewrite(tmp_path / "ckpt", change)
    with pytest.raises(ConversionError, match=message):
        cramming.load(tmp_path / "ckpt")


def test_missing_files_and_untied_decoders_are_named(tmp_path, capsys):
    from scaling.convert.__main__ import main as convert_main

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json .* or model_config.json"):
        cramming.load(tmp_path / "empty")
    state = write_checkpoint(tmp_path / "ckpt", arch())
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        cramming.load(tmp_path / "ckpt")
    state["decoder.weight"] = state["decoder.weight"] + 1  # no longer the embedding
    safetensors_torch.save_file(state, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(ConversionError, match="decoder.weight differs from encoder.embedding.word_embedding"):
        cramming.load(tmp_path / "ckpt")
    # on the command line: one line each, exit 2 for a path that holds no checkpoint, 1 for one we cannot compute
    capsys.readouterr()
    assert convert_main(["import-hf", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert convert_main(["import-hf", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err), err
    assert "decoder.weight differs" in err[1] and not (tmp_path / "out").exists()


def _wordpiece_tokenizer_json(path: Path) -> None:
    """A WordPiece tokenizer.json as cramming's tokenizer_preparation builds for the release (data=the-pile)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<cls>", "<sep>", "<mask>", "the", "##s"])}
    wordpiece = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    wordpiece.save(str(path))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """A cramming checkpoint with a tokenizer our vocabularies can be (sentencepiece Unigram, T5's ids and
    sentinels), as cramming saves one it downloaded (`data.tokenizer=` a Hugging Face T5 tokenizer): tokenizer.json
    only, so the conversion runs. Imported on the command line; returns the artifact."""
    from scaling.convert.__main__ import main as convert_main

    root = tmp_path_factory.mktemp("cramming")
    write_checkpoint(root / "ckpt", arch(embedding__vocab_size=vocab_lib.DEFAULT_VOCAB_SIZE))
    write_t5_style_tokenizer(root / "ckpt")
    assert convert_main(["import-hf", str(root / "ckpt"), str(root / "ours")]) == 0
    return root / "ours"


def test_import_hf_keeps_a_fitting_tokenizer(imported, tmp_path, capsys, caplog):
    from scaling.convert.__main__ import main as convert_main
    from scaling.training import artifact  # seqio, so TensorFlow: imported here, not when the script runs

    source = imported.parent / "ckpt"
    loaded = artifact.load(imported)
    assert loaded.shape == cramming.load(source)[1] and loaded.provenance["kind"] == "import-hf"
    assert loaded.provenance["vocabulary"] == tokenizer_lib.TOKENIZER_JSON
    text = "The state of the union is strong."
    assert list(loaded.vocabulary.encode(text)) == list(vocab_lib.default_vocabulary().encode(text))
    # the release's WordPiece tokenizer: the model imports, the tokenizer is reported and not kept
    (tmp_path / "wordpiece").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "wordpiece" / name).write_bytes((source / name).read_bytes())
    _wordpiece_tokenizer_json(tmp_path / "wordpiece" / tokenizer_lib.TOKENIZER_JSON)
    capsys.readouterr()
    assert convert_main(["import-hf", str(tmp_path / "wordpiece"), str(tmp_path / "ours")]) == 0
    assert capsys.readouterr().out.strip() == f"import-hf: crammed-bert-nl2-dm48-ff80-nh3 → {tmp_path / 'ours'}"
    assert artifact.load(tmp_path / "ours").vocabulary is None
    assert "'WordPiece' tokenizer" in caplog.text and "--config.vocabulary" in caplog.text


@pytest.mark.slow  # about 45 s of CPU: the finetuning command's start, two compiled programs, two steps
def test_finetuning_starts_from_the_import(imported, tmp_path, capsys, monkeypatch):
    from scaling import finetune as finetune_command

    monkeypatch.chdir(ROOT)
    command = [
        "--config=configs/finetune.py:demo",
        f"--workdir={tmp_path / 'ft'}",
        f"--config.init_from={imported}",
        "--config.tasks=trec",
        "--config.max_train_examples=32",
        "--config.max_eval_examples=16",
        "--config.batch_size=16",
        "--config.epochs=1",
        "--config.inputs_length=24",
    ]
    capsys.readouterr()
    assert finetune_command.main(command) == 0, capsys.readouterr().err
    assert "trec: median score" in capsys.readouterr().out
    results = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert results, results


def _write(argv: list[str]) -> int:
    parser = cli.parser("python tests/test_convert_cramming.py", __doc__)
    parser.add_argument("directory", type=Path, help="a new directory for the checkpoint")
    parser.add_argument("--full", action="store_true", help="the released size instead of the tiny test one")
    parser.add_argument("--check", action="store_true", help="import it and compare logits with cramming's forward")
    parser.add_argument(
        "--tokenizer",
        action="store_true",
        help="ship a tokenizer.json our vocabularies can be (the shipped sentencepiece model's, T5 ids and 100 "
        "sentinels) and size the vocabulary for it (8100), so that the import can be finetuned",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = copy.deepcopy(RELEASED_ARCH) if args.full else arch()
    if args.tokenizer:
        cfg["embedding"]["vocab_size"] = vocab_lib.DEFAULT_VOCAB_SIZE
    state = write_checkpoint(args.directory, cfg, seed=args.seed)
    if args.tokenizer:
        write_t5_style_tokenizer(args.directory)
    buffers = ("decoder.weight", "norm_factor", "position_ids")  # the tied copy and cramming's buffers
    count = sum(v.numel() for k, v in state.items() if not k.endswith(buffers))
    print(f"wrote {args.directory}: a random crammedBERT with {count:,} parameters")
    if args.check:
        started = time.perf_counter()
        model, shape = cramming.load(args.directory)
        seconds = time.perf_counter() - started
        tokens = padded_batch(shape.vocab_size, cfg["embedding"]["max_seq_length"])
        difference, largest = differences(model, state, cfg, tokens)
        print(f"cramming.load: {shape.name} in {seconds:.1f} s; logits on {tokens.shape[0]}x{tokens.shape[1]} tokens:")
        print(f"max |ours - cramming's forward| {difference:.1e} (largest |logit| {largest:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(_write))
