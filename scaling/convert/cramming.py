"""Cramming's released checkpoint (`JonasGeiping/crammed-bert` on the Hugging Face hub) as our crammed BERT.

    from scaling.convert import cramming
    model, shape = cramming.load("path/to/crammed-bert")  # model(tokens): float32 MLM logits [batch, length, vocab]

The hub entry is stored with the cramming repository's own architecture code (`cramming/architectures/
crammed_bert.py`, `components.py`, `embeddings.py`, `attention.py`), not a transformers class: `config.json` is
transformers' save of cramming's `crammedBertConfig`, `{"model_type": "crammedBERT", "architectures":
["ScriptableLMForPreTraining"], "arch": {...}}`, whose `arch` is cramming's `arch=crammed-bert` config resolved;
`model.safetensors` (or `pytorch_model.bin`) is the state dict of `ScriptableLMForPreTraining`. A checkpoint that
cramming saves locally (`checkpoints/<id>/`: the arch dict itself as `model_config.json`, `model.safetensors`)
reads the same way.

Every `arch` setting that crammed_bert.py reads is mapped to a Shape field or refused by name (ConversionError),
and so is any setting this module does not know; settings that only train or initialise (`init`, `loss`,
dropout probabilities beside `hidden_dropout_prob`, `classification_head`) are read past. The result is the
`crammed-bert` preset with the checkpoint's sizes: pre-norm layers, Cramming's split GLU, (scaled) sinusoidal
or learned positions, norm after the embedding and at the end, biases where `use_bias` / `attention.qkv_bias`
put them, the decoder tied to the embedding, cramming's erf GELU (`ffn_activation="gelu_exact"`).

Three re-layouts keep the computation exact without a model change:
- cramming fuses q, k and v into `query_key_value` [3·D, D], laid out per head as [heads, (q, k, v), d_head];
- its GLU is `x, gate = chunk(2); act(gate) * x` (gate second), ours `act(first) * second`: the halves swap;
- its sinusoidal table interleaves sine and cosine (`pe[:, 0::2] = sin`, `pe[:, 1::2] = cos`), ours puts the
  sines first. Permuting the hidden axis of every tensor the same way (embeddings, norms, the model side of each
  projection) computes the same logits — norms and residual sums are indifferent to the order of features — so
  the hidden features are stored in our order.

Its tokenizer (`tokenizer.json`) is kept only when it is a sentencepiece-style Unigram model that fits the model
(`scaling.convert.tokenizer`); the released one is WordPiece, which no sentencepiece model reproduces.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from scaling import shapes
from scaling.convert import hf
from scaling.convert.params import ConversionError, Tensors, assemble
from scaling.models.bert import Bert

MODEL_TYPE = "crammedBERT"
CONFIG_FILES = ("config.json", "model_config.json")  # hub (transformers save) / cramming's own save_final_model
# Heads of the classes registered for crammedBERT: MLM pretraining (the release) and SCRIPT pretraining share the
# encoder and the tied decoder; the classifiers add a pooler and a head our MLM artifact has no place for.
PRETRAINING_CLASSES = ("ScriptableLMForPreTraining", "ScriptableLMForSCRIPTTraining")
CRAMMED_ARCHITECTURE = "ScriptableCrammedBERT"  # cramming's `arch.architectures` for crammed_bert.py

# Every setting of cramming's arch config (cramming/config/arch/crammed-bert.yaml), by section. Those not mapped
# below do not change the forward pass: initialisation, loss, dropout, scripting and fusion flags, fp32 casts.
_KNOWN = {
    "": {
        "architectures",
        "num_transformer_layers",
        "hidden_size",
        "intermed_size",
        "hidden_dropout_prob",
        "norm",
        "norm_eps",
        "norm_scheme",
        "nonlin",
        "tie_weights",
        "decoder_bias",
        "sparse_prediction",
        "loss",
        "objective_layout",
        "embedding",
        "attention",
        "init",
        "ffn_layer_frequency",
        "skip_head_transform",
        "use_bias",
        "final_norm",
        "num_labels",
        "classification_head",
    },
    "embedding": {
        "vocab_size",
        "pos_embedding",
        "dropout_prob",
        "pad_token_id",
        "max_seq_length",
        "embedding_dim",
        "normalization",
        "stable_low_precision",
    },
    "attention": {
        "type",
        "causal_attention",
        "num_attention_heads",
        "dropout_prob",
        "skip_output_projection",
        "qkv_bias",
        "rotary_embedding",
        "seq_op_in_fp32",
        "sequence_op",
        "high_level_fusion",
        "low_level_fusion",
    },
}
# cramming nonlin → (our ffn_activation, ffn_gating). torch.nn.GELU is the erf GELU; "…glu" wraps it in a GLU.
_NONLINS = {
    "GELU": ("gelu_exact", "none"),
    "GELUglu": ("gelu_exact", "split"),
    "ReLU": ("relu", "none"),
    "ReLUglu": ("relu", "split"),
}
_NORMS = {"LayerNorm": "layer", "ApexLayerNorm": "layer", "RMSNorm": "rms"}  # Apex's is a fused LayerNorm
_POSITIONS = ("scaled-sinusoidal", "sinusoidal", "learned")
# Settings crammed_bert.py does not read (its layers are always pre-norm, its decoder always tied, an FFN in every
# layer): any other value describes a different code path than the one that computed these weights.
_FIXED_BY_CODE = {"norm_scheme": "pre", "tie_weights": True, "ffn_layer_frequency": 1}
# attention settings our softmax self-attention computes, with the only value it can take.
_ATTENTION = {
    "type": "self-attention",
    "causal_attention": False,
    "skip_output_projection": False,
    "rotary_embedding": False,
    "sequence_op": "torch-softmax",
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path} is not readable JSON ({' '.join(str(e).split())}); download it again") from None


def is_cramming(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a cramming checkpoint: a config.json of model_type crammedBERT (or with an `arch`
    dict), or cramming's own model_config.json."""
    directory = Path(directory)
    for name in CONFIG_FILES:
        path = directory / name
        if path.is_file():
            try:
                config = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            if not isinstance(config, dict):
                return False
            if name == "config.json":
                return config.get("model_type") == MODEL_TYPE or isinstance(config.get("arch"), dict)
            return "num_transformer_layers" in config
    return False


def read_config(directory: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """(cramming's `arch` dict, the file it came from), after checking the checkpoint holds a pretraining model."""
    directory = Path(directory)
    path = next((directory / n for n in CONFIG_FILES if (directory / n).is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"{directory}: no config.json (the hub's crammed-bert) or model_config.json (a checkpoint cramming saved)"
        )
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ConversionError(f"{path} is not a cramming config (a JSON object); download it again")
    if path.name == "config.json":
        if not isinstance(config.get("arch"), dict):
            raise ConversionError(
                f"{path}: no 'arch' dict; not a cramming crammedBERT config (model_type {config.get('model_type')!r})"
            )
        classes = config.get("architectures") or []
        other = [c for c in classes if c not in PRETRAINING_CLASSES]
        if other:
            raise ConversionError(
                f"{path}: architectures {other}: a finetuned cramming model (pooler and classifier) is not "
                f"imported; import the pretraining checkpoint ({' or '.join(PRETRAINING_CLASSES)})"
            )
        config = config["arch"]
    return config, str(path)


def _section(arch: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = arch.get(name)
    if not isinstance(value, dict):
        raise ConversionError(f"{where}: arch.{name} is missing or not a dict; cramming's crammed-bert has one")
    return value


def _number(section: dict[str, Any], key: str, where: str, *, kind: type = int, prefix: str = "") -> Any:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        expected = "an integer" if kind is int else "a number"
        raise ConversionError(f"{where}: arch.{prefix}{key} = {value!r}, expected {expected}")
    return kind(value)


def _unknown(arch: dict[str, Any], where: str) -> None:
    unknown = sorted(k for k in arch if k not in _KNOWN[""])
    for section in ("embedding", "attention"):
        unknown += sorted(f"{section}.{k}" for k in _section(arch, section, where) if k not in _KNOWN[section])
    if unknown:
        raise ConversionError(
            f"{where}: arch setting(s) {unknown} unknown to this importer (written for cramming's "
            f"crammed_bert.py); they may change the computation, so the checkpoint is not imported"
        )


def shape_from_config(arch: dict[str, Any], where: str, vocab_size: int | None = None) -> shapes.Shape:
    """Our crammed-bert shape for cramming's `arch` dict, or a ConversionError naming the first setting our Bert
    cannot compute. `vocab_size` fills `arch.embedding.vocab_size` when cramming left it empty (its
    model_config.json does; the embedding's rows say it)."""
    _unknown(arch, where)
    embedding, attention = _section(arch, "embedding", where), _section(arch, "attention", where)

    def refuse(key: str, value: Any, why: str) -> ConversionError:
        return ConversionError(f"{where}: arch.{key} = {value!r} is not expressible: {why}")

    layouts = arch.get("architectures") or [CRAMMED_ARCHITECTURE]
    if CRAMMED_ARCHITECTURE not in layouts:
        raise refuse("architectures", layouts, f"only cramming's crammed_bert.py ({CRAMMED_ARCHITECTURE}) is read")
    layout = arch.get("objective_layout", "MLM")
    if layout not in ("MLM", "SCRIPT"):
        raise refuse("objective_layout", layout, "cramming pretrains with 'MLM' or 'SCRIPT'")
    for key, value in _FIXED_BY_CODE.items():
        if arch.get(key, value) != value:
            raise refuse(key, arch[key], f"crammed_bert.py always computes {key} = {value!r}")
    for key, value in _ATTENTION.items():
        if attention.get(key, value) != value:
            raise refuse(f"attention.{key}", attention[key], f"our BERT computes {key} = {value!r}")
    nonlin = arch.get("nonlin")
    if nonlin not in _NONLINS:
        raise refuse("nonlin", nonlin, f"our feed-forward computes {list(_NONLINS)}")
    activation, gating = _NONLINS[nonlin]
    norm = arch.get("norm")
    if norm not in _NORMS:
        raise refuse("norm", norm, f"our norms are {list(_NORMS)}")
    positions = embedding.get("pos_embedding")
    if positions not in _POSITIONS:
        raise refuse("embedding.pos_embedding", positions, f"our positions are {list(_POSITIONS)}")
    layout_head = layout == "SCRIPT"  # ScriptableLMForSCRIPTTraining always has the prediction head
    head_transform = layout_head or not arch.get("skip_head_transform", False)
    if head_transform and activation != "gelu_exact":
        raise refuse("nonlin", nonlin, "the head transform (skip_head_transform false) of our BERT uses the erf GELU")
    d = _number(arch, "hidden_size", where)
    if embedding.get("embedding_dim", d) != d:
        raise refuse("embedding.embedding_dim", embedding["embedding_dim"], f"it must equal hidden_size = {d}")
    vocab = embedding.get("vocab_size")
    vocab = vocab_size if vocab is None else _number(embedding, "vocab_size", where, prefix="embedding.")
    if vocab is None:
        raise ConversionError(f"{where}: arch.embedding.vocab_size is empty and no embedding tensor gives it")
    sparse = arch.get("sparse_prediction", False)
    if not isinstance(sparse, (bool, int, float)):
        raise refuse("sparse_prediction", sparse, "expected a masking rate or a boolean")
    heads = _number(attention, "num_attention_heads", where, prefix="attention.")
    pad = 0 if embedding.get("pad_token_id") is None else _number(embedding, "pad_token_id", where, prefix="embedding.")
    qkv_bias, use_bias = bool(attention.get("qkv_bias", False)), bool(arch.get("use_bias", False))
    fields = dict(
        num_encoder_layers=_number(arch, "num_transformer_layers", where),
        num_decoder_layers=0,
        d_model=d,
        d_ff=_number(arch, "intermed_size", where),
        num_heads=heads,
        d_kv=d // heads if heads > 0 else 0,
        vocab_size=vocab,
        shared_heads=False,
        tied_kv=False,
        ffn_activation=activation,
        ffn_gating=gating,
        tie_embeddings=True,
        position_embedding=positions,
        max_length=_number(embedding, "max_seq_length", where, prefix="embedding."),
        norm_kind=_NORMS[norm],
        norm_position="pre",
        norm_eps=_number(arch, "norm_eps", where, kind=float),
        # one switch puts biases on q, k, v and the attention output (use_bias on the output in cramming)
        attention_bias=qkv_bias or use_bias,
        linear_bias=use_bias,
        type_vocab_size=0,
        embedding_norm=bool(embedding.get("normalization", True)),
        final_norm=bool(arch.get("final_norm", True)),
        head_transform=head_transform,
        decoder_bias=bool(arch.get("decoder_bias", False)),
        sparse_prediction=bool(sparse),
        layer_sharing="none",
        dropout_rate=_number(arch, "hidden_dropout_prob", where, kind=float),
        pad_id=pad,
        roberta_positions=False,
    )
    if d % 2 and positions != "learned":
        raise refuse("hidden_size", d, "cramming's sinusoidal table needs an even hidden size")
    try:
        return dataclasses.replace(shapes.BERT_PRESETS["crammed-bert"], **fields)
    except shapes.ShapeError as e:
        raise ConversionError(f"{where}: {e}") from None


def _strip(name: str) -> str:
    """State-dict names without the wrappers cramming's engine may leave (torch.compile, DistributedDataParallel)."""
    for prefix in ("_orig_mod.", "module."):
        name = name.removeprefix(prefix)
    return name


def load(path: str | os.PathLike) -> tuple[Bert, shapes.Shape]:
    """Our Bert holding a cramming crammedBERT checkpoint's weights exactly, and its shape.
    `model(tokens)` gives float32 MLM logits [batch, length, vocab]; tokens equal to `shape.pad_id`
    (cramming's `embedding.pad_token_id`) are masked out of attention, as cramming's attention_mask does."""
    directory = Path(path)
    arch, config_path = read_config(directory)
    found, read, where = hf._weight_files(directory)
    names = {_strip(k): k for k in found}
    found = {k: found[v] for k, v in names.items()}
    word, tied = "encoder.embedding.word_embedding.weight", "decoder.weight"
    # cramming's loader accepts a file holding only decoder.weight (a save without the tied copy)
    stored = tied if tied in found and word not in found else word
    vocab = found[stored][0] if stored in found and len(found[stored]) == 2 else None
    shape = shape_from_config(arch, config_path, vocab)
    t = Tensors(found, lambda name: read(names[name]), where)
    d, n, h, f = shape.d_model, shape.num_encoder_layers, shape.num_heads, shape.d_ff
    k, v = shape.d_kv, shape.vocab_size
    qkv_biased = bool(arch["attention"].get("qkv_bias", False))  # use_bias is shape.linear_bias

    # our sinusoidal encoding lists the sines first: read cramming's interleaved hidden axis in that order
    sinusoidal = shape.position_embedding != "learned"
    order = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)]) if sinusoidal else np.arange(d)

    def hidden(array: np.ndarray, *axes: int) -> np.ndarray:
        for axis in axes:
            array = np.take(array, order, axis=axis)
        return array

    def norm(prefix: str) -> dict[str, np.ndarray]:
        if shape.norm_kind == "rms":
            return {"scale": hidden(t.take(f"{prefix}.learnable_scale", (d,)), 0)}
        return {
            "scale": hidden(t.take(f"{prefix}.weight", (d,)), 0),
            "bias": hidden(t.take(f"{prefix}.bias", (d,)), 0),
        }

    def swap_halves(array: np.ndarray) -> np.ndarray:
        """cramming's GLU gates the second half of dense_in's output, ours the first."""
        if shape.ffn_gating != "split":
            return array
        first, second = np.split(array, 2, axis=-1)
        return np.concatenate([second, first], axis=-1)

    layers = []
    for i in range(n):
        b = f"encoder.layers.{i}"
        attention = f"{b}.attn.self_attention"
        qkv = t.take(f"{attention}.query_key_value.weight", (3 * d, d)).reshape(h, 3, k, d)
        layer = {
            f"attention.{name}": hidden(qkv[:, j].transpose(2, 0, 1), 0)
            for j, name in enumerate(("query", "key", "value"))
        }
        layer["attention.out"] = hidden(t.take(f"{b}.attn.dense.weight", (d, d)).T.reshape(h, k, d), 2)
        if shape.attention_bias:  # our one switch for both; the half cramming does not have is a zero bias
            qkv_bias = t.take(f"{attention}.query_key_value.bias", (3 * d,)) if qkv_biased else np.zeros(3 * d)
            for j, name in enumerate(("query", "key", "value")):
                layer[f"attention.{name}_bias"] = qkv_bias.reshape(h, 3, k)[:, j]
            out_bias = t.take(f"{b}.attn.dense.bias", (d,)) if shape.linear_bias else np.zeros(d)
            layer["attention.out_bias"] = hidden(out_bias, 0)
        scale = f"{attention}.norm_factor"  # a persistent buffer: the logit scale, 1/sqrt(d_head)
        if scale in t and not math.isclose(value := float(t.take(scale, ())), k**-0.5, rel_tol=1e-6):
            raise ConversionError(f"{where}: {scale} = {value}, expected 1/sqrt({k}) as our attention uses")
        layer["mlp.wi"] = swap_halves(hidden(t.take(f"{b}.ffn.dense_in.weight", (f, d)).T, 0))
        layer["mlp.wo"] = hidden(t.take(f"{b}.ffn.dense_out.weight", (d, shape.ffn_hidden)).T, 1)
        if shape.linear_bias:
            layer["mlp.wi_bias"] = swap_halves(t.take(f"{b}.ffn.dense_in.bias", (f,)))
            layer["mlp.wo_bias"] = hidden(t.take(f"{b}.ffn.dense_out.bias", (d,)), 0)
        for ours, theirs in (("attention_norm", "norm1"), ("mlp_norm", "norm2")):
            layer |= {f"{ours}.{key}": value for key, value in norm(f"{b}.{theirs}").items()}
        layers.append(layer)

    embedding = t.take(stored, (v, d))
    if stored == word and tied in t and not np.array_equal(t.take(tied, (v, d)), embedding):
        raise ConversionError(f"{where}: {tied} differs from {word}; crammed_bert.py ties them, as our model does")
    arrays = {
        "embedding": hidden(embedding, 1),
        **{f"layers.{key}": np.stack([layer[key] for layer in layers]) for key in layers[0]},
    }
    positions = "encoder.embedding.pos_embedding"
    if shape.position_embedding == "scaled-sinusoidal":
        arrays["position_scale"] = t.take(f"{positions}.scale_factor", (1,))
    elif shape.position_embedding == "learned":
        arrays["position_embedding"] = t.take(f"{positions}.embedding.weight", (shape.max_length, d))
        t.skip(f"{positions}.position_ids")  # a persistent buffer of 0..max_length-1
    if shape.embedding_norm:
        arrays |= {f"embedding_norm.{key}": value for key, value in norm("encoder.embedding.norm").items()}
    if shape.final_norm:
        arrays |= {f"final_norm.{key}": value for key, value in norm("encoder.final_norm").items()}
    if shape.head_transform:
        arrays["head_dense"] = hidden(t.take("prediction_head.dense.weight", (d, d)).T, 0, 1)
        if shape.linear_bias:
            arrays["head_dense_bias"] = hidden(t.take("prediction_head.dense.bias", (d,)), 0)
        arrays |= {f"head_norm.{key}": value for key, value in norm("prediction_head.norm").items()}
    if shape.decoder_bias:
        arrays["decoder_bias_value"] = t.take("decoder.bias", (v,))
    t.check_all_taken()
    return assemble(shape, arrays, where), shape


__all__ = ["MODEL_TYPE", "is_cramming", "load", "read_config", "shape_from_config"]
