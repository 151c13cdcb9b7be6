"""Hugging Face T5 directories in and out: `google/t5-efficient-*`, `t5-*`, `google/t5-v1_1-*` and our exports.

    model, shape = load_t5("path/to/t5-efficient-small-nl24")   # shape.name == "small-nl24"
    logits = model(encoder_input_tokens, decoder_input_tokens)  # float32 [batch, target_length, vocab]
    export(model, "out/")                                       # T5ForConditionalGeneration.from_pretrained("out/")

The shape comes from `config.json` (released names are nominal; the config is not). Weights come from
`model.safetensors` (or its sharded index), else `pytorch_model.bin` (needs torch), else `flax_model.msgpack`;
a truncated or corrupt weights file is a one-line ConversionError naming it.
Hugging Face keeps one relative-position table per stack in block 0, as we do; torch Linear weights are
[out, in], ours [in, heads, d_kv] / [in, out]. Output layer: a tied head whose logits are scaled by
d_model^-0.5 (v1.0, and what a config without `tie_word_embeddings` means) is our `tie_embeddings`; an untied
unscaled head (v1.1) is our `lm_head`; the two mixed cases transformers 5 can express (tied but unscaled,
untied but scaled) become an `lm_head` with the scale folded in, which computes the same logits.

BERT, RoBERTa and pre-norm RoBERTa masked LMs: `load_bert` / `export_bert`, at the end of this file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scaling import shapes
from scaling.convert.params import (
    ConversionError,
    Tensors,
    assemble,
    flat_arrays,
    infer_shape,
    split_heads,
)
from scaling.models.t5 import T5

# transformers' activation names → ours (our GELU is the tanh approximation, transformers' "gelu_new").
_ACTIVATIONS = {"relu": "relu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu"}
_REQUIRED = ("d_model", "d_kv", "d_ff", "num_layers", "num_heads", "vocab_size")


# ------------------------------------------------------------------------------------------------ import


def _config_json(directory: Path, family: str) -> dict[str, Any]:
    """`directory/config.json` as a dict, or one line saying what is wrong with it."""
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a Hugging Face {family} directory needs config.json")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path} is not readable JSON ({_cause(e)}); download it again") from None
    if not isinstance(config, dict):
        raise ConversionError(f"{path} is not a Hugging Face config (a JSON object); download it again")
    return config


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    config = _config_json(directory, "T5")
    if config.get("model_type", "t5") not in ("t5", "mt5"):
        raise ConversionError(f"{path}: model_type {config['model_type']!r}, expected 't5' (or 'mt5')")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ConversionError(f"{path}: missing field(s) {missing}; the shape is read from the config, not the name")
    return config


def _activation(config: dict[str, Any], where: str) -> tuple[str, str]:
    """(ffn_activation, ffn_gating) for `feed_forward_proj`, as transformers' T5Config reads it."""
    proj = config.get("feed_forward_proj", "relu")
    parts = proj.split("-")
    gating = "gated" if len(parts) == 2 and parts[0] == "gated" else "none"
    act = "gelu_new" if proj == "gated-gelu" else parts[-1]
    if act not in _ACTIVATIONS or (len(parts) == 2 and parts[0] != "gated") or len(parts) > 2:
        raise ConversionError(
            f"{where}: feed_forward_proj {proj!r} is not expressible: our feed-forward is relu or "
            f"tanh-approximated gelu ({', '.join(_ACTIVATIONS)}), optionally 'gated-'"
        )
    return _ACTIVATIONS[act], gating


def _cause(error: BaseException) -> str:
    """An exception's message on one line (Rust and pickle errors can span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _unreadable(path: Path, error: BaseException) -> ConversionError:
    return ConversionError(f"{path} is unreadable ({_cause(error)}): truncated or corrupt; download or copy it again")


def _needs_safetensors(path: Path) -> ConversionError:
    return ConversionError(f"{path}: reading or writing it needs safetensors (pip install -e . installs it)")


def _safetensors(files: list[Path]) -> tuple[dict[str, tuple[int, ...]], Callable[[str], np.ndarray]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise _needs_safetensors(files[0] if files else Path("model.safetensors")) from None

    handles, where, found = {}, {}, {}
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found{' (a link to a missing blob)' if f.is_symlink() else ''}")
        try:  # a truncated file fails here: the header's offsets must cover the file exactly
            handle = safe_open(str(f), framework="numpy")
            for name in handle.keys():  # noqa: SIM118 (safe_open: no __iter__)
                found[name], where[name] = tuple(handle.get_slice(name).get_shape()), f
        except Exception as e:  # safetensors raises its own SafetensorError, not an OSError
            raise _unreadable(f, e) from None
        handles[f] = handle

    def read(name: str) -> np.ndarray:
        try:
            return handles[where[name]].get_tensor(name)
        except Exception as e:  # as above
            raise _unreadable(where[name], e) from None

    return found, read


def _weight_files(directory: Path) -> tuple[dict[str, tuple[int, ...]], Callable[[str], np.ndarray], str]:
    """(shapes by tensor name, reader, file description) for the first weight format present. A truncated or
    corrupt file is a ConversionError naming it."""
    index = directory / "model.safetensors.index.json"
    single = directory / "model.safetensors"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConversionError(f"{index} is not a safetensors index with a weight_map ({_cause(e)})") from None
        return *_safetensors([directory / f for f in shards]), str(index)
    if single.is_file():
        return *_safetensors([single]), str(single)
    if (directory / "pytorch_model.bin").is_file():
        path = directory / "pytorch_model.bin"
        try:
            import torch
        except ImportError:
            raise ConversionError(
                f"{path}: reading it needs torch (pip install torch), or convert it to safetensors"
            ) from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises RuntimeError, EOFError or UnpicklingError
            raise _unreadable(path, e) from None
        arrays = {k: v.float().numpy() for k, v in state.items()}
        return {k: v.shape for k, v in arrays.items()}, arrays.__getitem__, str(path)
    if (directory / "flax_model.msgpack").is_file():
        path = directory / "flax_model.msgpack"
        try:
            arrays = _from_flax(path)
        except Exception as e:  # msgpack raises its own errors
            raise _unreadable(path, e) from None
        return {k: v.shape for k, v in arrays.items()}, arrays.__getitem__, str(path)
    dangling = [p.name for p in (single, directory / "pytorch_model.bin") if p.is_symlink()]
    raise FileNotFoundError(
        f"{directory}: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or flax_model.msgpack"
        + (f" ({', '.join(dangling)}: a link to a missing blob; download it again)" if dangling else "")
    )


def _from_flax(path: Path) -> dict[str, np.ndarray]:
    """transformers' Flax T5 layout in torch names: Dense `kernel` [in, out] → `weight` [out, in]."""
    import flax.serialization
    import flax.traverse_util

    tree = flax.serialization.msgpack_restore(path.read_bytes())
    out = {}
    for key, value in flax.traverse_util.flatten_dict(tree, sep=".").items():
        stem, leaf = key.rsplit(".", 1)
        value = np.asarray(value, np.float32)
        out[f"{stem}.weight"] = value.T if leaf == "kernel" else value
    return out


def load_t5(path: str | os.PathLike) -> tuple[T5, shapes.Shape]:
    """Our T5 holding a Hugging Face T5 checkpoint's weights exactly, and its shape."""
    directory = Path(path)
    config = read_config(directory)
    found, read, where = _weight_files(directory)
    # transformers ignores the cross-attention position table some old files carry; copies of the shared
    # embedding under the stacks' names are checked equal below and then dropped.
    t = Tensors(
        found,
        read,
        where,
        ignore=lambda n: n == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
    )
    d, h, k, f, v = (config[n] for n in ("d_model", "num_heads", "d_kv", "d_ff", "vocab_size"))
    n_enc, n_dec = config["num_layers"], config.get("num_decoder_layers") or config["num_layers"]
    activation, gating = _activation(config, str(directory / "config.json"))
    scaled = (
        config["scale_decoder_outputs"]
        if "scale_decoder_outputs" in config
        else config.get("tie_word_embeddings", True) is not False
    )
    shared = t.take("shared.weight", (v, d))
    for copy in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        if copy in t and not np.array_equal(t.take(copy, (v, d)), shared):
            raise ConversionError(f"{where}: {copy} differs from shared.weight; our T5 has one embedding")
    head = t.take("lm_head.weight", (v, d)) if "lm_head.weight" in t else None
    if head is None and config.get("tie_word_embeddings") is False and "scale_decoder_outputs" not in config:
        raise ConversionError(f"{where}: missing tensor 'lm_head.weight' (config says tie_word_embeddings false)")
    untied = head is not None and not np.array_equal(head, shared)
    shape = infer_shape(
        where,
        num_encoder_layers=n_enc,
        num_decoder_layers=n_dec,
        d_model=d,
        d_ff=f,
        num_heads=h,
        d_kv=k,
        vocab_size=v,
        ffn_activation=activation,
        ffn_gating=gating,
        tie_embeddings=scaled and not untied,
        relpos_buckets=config.get("relative_attention_num_buckets", 32),
        relpos_max_distance=config.get("relative_attention_max_distance", 128),
        norm_eps=config.get("layer_norm_epsilon", 1e-6),
        dropout_rate=config.get("dropout_rate", 0.1),
    )

    def attention(prefix: str) -> dict[str, np.ndarray]:
        return {
            "query": split_heads(t.take(f"{prefix}.q.weight", (h * k, d)).T, h),
            "key": split_heads(t.take(f"{prefix}.k.weight", (h * k, d)).T, h),
            "value": split_heads(t.take(f"{prefix}.v.weight", (h * k, d)).T, h),
            "out": t.take(f"{prefix}.o.weight", (d, h * k)).T.reshape(h, k, d),
        }

    def mlp(prefix: str) -> dict[str, np.ndarray]:
        if gating == "gated":
            out = {
                "wi": t.take(f"{prefix}.wi_0.weight", (f, d)).T,
                "wi_gate": t.take(f"{prefix}.wi_1.weight", (f, d)).T,
            }
        else:
            out = {"wi": t.take(f"{prefix}.wi.weight", (f, d)).T}
        return out | {"wo": t.take(f"{prefix}.wo.weight", (d, f)).T}

    def norm(name: str) -> np.ndarray:
        return t.take(name, (d,))

    def stack(stack_name: str, layers: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {f"{stack_name}.{key}": np.stack([layer[key] for layer in layers]) for key in layers[0]}

    encoder = []
    for i in range(n_enc):
        b = f"encoder.block.{i}.layer"
        layer = {f"attention.{n}": w for n, w in attention(f"{b}.0.SelfAttention").items()}
        layer |= {f"mlp.{n}": w for n, w in mlp(f"{b}.1.DenseReluDense").items()}
        encoder.append(
            layer
            | {
                "attention_norm.scale": norm(f"{b}.0.layer_norm.weight"),
                "mlp_norm.scale": norm(f"{b}.1.layer_norm.weight"),
            }
        )
    decoder = []
    for i in range(n_dec):
        b = f"decoder.block.{i}.layer"
        layer = {f"self_attention.{n}": w for n, w in attention(f"{b}.0.SelfAttention").items()}
        layer |= {f"cross_attention.{n}": w for n, w in attention(f"{b}.1.EncDecAttention").items()}
        layer |= {f"mlp.{n}": w for n, w in mlp(f"{b}.2.DenseReluDense").items()}
        decoder.append(
            layer
            | {
                "self_attention_norm.scale": norm(f"{b}.0.layer_norm.weight"),
                "cross_attention_norm.scale": norm(f"{b}.1.layer_norm.weight"),
                "mlp_norm.scale": norm(f"{b}.2.layer_norm.weight"),
            }
        )
    buckets = shape.relpos_buckets
    arrays = {
        "embedding": shared,
        "encoder_relpos.table": t.take(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (buckets, h)
        ),
        "decoder_relpos.table": t.take(
            "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (buckets, h)
        ),
        "encoder_norm.scale": norm("encoder.final_layer_norm.weight"),
        "decoder_norm.scale": norm("decoder.final_layer_norm.weight"),
        **stack("encoder_layers", encoder),
        **stack("decoder_layers", decoder),
    }
    if not shape.tie_embeddings:
        arrays["lm_head"] = (head if untied else shared).T * (d**-0.5 if scaled else 1.0)
    t.check_all_taken()
    return assemble(shape, arrays, where), shape


# ------------------------------------------------------------------------------------------------ export


def hf_config(shape: shapes.Shape) -> dict[str, Any]:
    """A transformers T5Config dict for the shape (SH and SKV export expanded: HF has no sharing)."""
    if shape.family != "t5":
        raise ConversionError(f"shape {shape.name} is a {shape.family} shape; only T5 exports to Hugging Face T5")
    act = {"relu": "relu", "gelu": "gelu"}[shape.ffn_activation]
    proj = f"gated-{act}" if shape.ffn_gating == "gated" else ("gelu_new" if act == "gelu" else act)
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "is_encoder_decoder": True,
        "vocab_size": shape.vocab_size,
        "d_model": shape.d_model,
        "d_kv": shape.d_kv,
        "d_ff": shape.d_ff,
        "num_layers": shape.num_encoder_layers,
        "num_decoder_layers": shape.num_decoder_layers,
        "num_heads": shape.num_heads,
        "relative_attention_num_buckets": shape.relpos_buckets,
        "relative_attention_max_distance": shape.relpos_max_distance,
        "layer_norm_epsilon": shape.norm_eps,
        "dropout_rate": shape.dropout_rate,
        "feed_forward_proj": proj,
        "tie_word_embeddings": shape.tie_embeddings,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "scaling_shape": shape.name,
    }


def hf_tensors(model: T5) -> dict[str, np.ndarray]:
    """transformers tensor names → arrays for our model (contiguous float32, torch [out, in] layout)."""
    shape, ours = model.shape, flat_arrays(model)
    h, d = shape.num_heads, shape.d_model

    def kv(w: np.ndarray) -> np.ndarray:  # [D, KVH, K] → torch [H·K, D], one shared head repeated for SH
        return np.repeat(w, h // w.shape[1], axis=1).reshape(d, -1).T

    def attention(src: str, dst: str, i: int) -> dict[str, np.ndarray]:
        key = ours[f"{src}.key"][i]
        return {
            f"{dst}.q.weight": ours[f"{src}.query"][i].reshape(d, -1).T,
            f"{dst}.k.weight": kv(key),
            f"{dst}.v.weight": kv(key if shape.tied_kv else ours[f"{src}.value"][i]),
            f"{dst}.o.weight": ours[f"{src}.out"][i].reshape(-1, d).T,
        }

    def mlp(src: str, dst: str, i: int) -> dict[str, np.ndarray]:
        if shape.ffn_gating == "gated":
            out = {f"{dst}.wi_0.weight": ours[f"{src}.wi"][i].T, f"{dst}.wi_1.weight": ours[f"{src}.wi_gate"][i].T}
        else:
            out = {f"{dst}.wi.weight": ours[f"{src}.wi"][i].T}
        return out | {f"{dst}.wo.weight": ours[f"{src}.wo"][i].T}

    out = {
        "shared.weight": ours["embedding"],
        "encoder.final_layer_norm.weight": ours["encoder_norm.scale"],
        "decoder.final_layer_norm.weight": ours["decoder_norm.scale"],
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": ours["encoder_relpos.table"],
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": ours["decoder_relpos.table"],
    }
    if not shape.tie_embeddings:
        out["lm_head.weight"] = ours["lm_head"].T
    for i in range(shape.num_encoder_layers):
        b = f"encoder.block.{i}.layer"
        out |= attention("encoder_layers.attention", f"{b}.0.SelfAttention", i)
        out |= mlp("encoder_layers.mlp", f"{b}.1.DenseReluDense", i)
        out[f"{b}.0.layer_norm.weight"] = ours["encoder_layers.attention_norm.scale"][i]
        out[f"{b}.1.layer_norm.weight"] = ours["encoder_layers.mlp_norm.scale"][i]
    for i in range(shape.num_decoder_layers):
        b = f"decoder.block.{i}.layer"
        out |= attention("decoder_layers.self_attention", f"{b}.0.SelfAttention", i)
        out |= attention("decoder_layers.cross_attention", f"{b}.1.EncDecAttention", i)
        out |= mlp("decoder_layers.mlp", f"{b}.2.DenseReluDense", i)
        for j, name in enumerate(("self_attention_norm", "cross_attention_norm", "mlp_norm")):
            out[f"{b}.{j}.layer_norm.weight"] = ours[f"decoder_layers.{name}.scale"][i]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def generation_config() -> dict[str, Any]:
    """transformers' `generation_config.json` for our T5s: decoding starts from pad (0) and stops at EOS (1)."""
    return {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}


def export(model: T5, directory: str | os.PathLike) -> Path:
    """Writes config.json, generation_config.json and model.safetensors that
    `T5ForConditionalGeneration.from_pretrained` loads and `generate` decodes with."""
    directory = Path(directory)
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise _needs_safetensors(directory / "model.safetensors") from None
    if (directory / "config.json").exists():
        raise FileExistsError(f"{directory / 'config.json'} exists; export into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    save_file(hf_tensors(model), str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "generation_config.json").write_text(json.dumps(generation_config(), indent=2) + "\n")
    (directory / "config.json").write_text(json.dumps(hf_config(model.shape), indent=2) + "\n")
    return directory


# ------------------------------------------------------------------------------------- BERT and RoBERTa
#
#     model, shape = load_bert("path/to/bert-or-roberta")  # BertForMaskedLM, RobertaForMaskedLM,
#     logits = model(input_tokens)                           # RobertaPreLayerNormForMaskedLM directories
#     export_bert(model, shape, "out/")                      # *ForMaskedLM.from_pretrained("out/")
#
# model_type bert is post-norm with positions 0..L-1; roberta is post-norm with RoBERTa's position ids (the n-th
# non-pad token at row pad_token_id + n, kept as `roberta_positions`, the whole table kept); roberta-prelayernorm
# is the pre-norm RoBERTa (norm before each sub-layer and at the end, as our roberta-l*-h* presets). Tokens equal
# to `shape.pad_id` (the config's pad_token_id: 0 for BERT, 1 for RoBERTa) are masked out of attention, as
# transformers does given attention_mask = input_ids != pad_token_id.

# model_type → (tensor prefix of the encoder, of the MLM head, architecture)
_BERT_TYPES = {
    "bert": ("bert", "cls.predictions", "BertForMaskedLM"),
    "roberta": ("roberta", "lm_head", "RobertaForMaskedLM"),
    "roberta-prelayernorm": ("roberta_prelayernorm", "lm_head", "RobertaPreLayerNormForMaskedLM"),
}
BERT_MODEL_TYPES = tuple(_BERT_TYPES)
# transformers' hidden_act → our ffn_activation. BERT's head applies hidden_act too, and ours is the erf GELU,
# so BERT needs "gelu"; RoBERTa's head is always the erf GELU.
_BERT_ACTIVATIONS = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu"}
_BERT_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def model_type(directory: str | os.PathLike) -> str:
    """config.json's model_type: 't5' when absent (as in old T5 configs) or unreadable (load_t5 then says why)."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return "t5"
    return str(config.get("model_type", "t5")) if isinstance(config, dict) else "t5"


def read_bert_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    config = _config_json(directory, "BERT")
    if config.get("model_type") not in _BERT_TYPES:
        raise ConversionError(f"{path}: model_type {config.get('model_type')!r}, expected one of {list(_BERT_TYPES)}")
    missing = [k for k in _BERT_REQUIRED if k not in config]
    if missing:
        raise ConversionError(f"{path}: missing field(s) {missing}")
    kind = config.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ConversionError(f"{path}: position_embedding_type {kind!r} is not supported (only 'absolute')")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise ConversionError(f"{path}: a decoder (is_decoder / add_cross_attention) is not supported")
    act = config.get("hidden_act", "gelu")
    if act not in _BERT_ACTIVATIONS or (config["model_type"] == "bert" and act != "gelu"):
        allowed = ["gelu"] if config["model_type"] == "bert" else list(_BERT_ACTIVATIONS)
        raise ConversionError(f"{path}: hidden_act {act!r} is not supported for {config['model_type']} ({allowed})")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ConversionError(f"{path}: num_attention_heads does not divide hidden_size")
    return config


def _bert_shape(config: dict[str, Any], tied: bool, where: str) -> shapes.Shape:
    """The bert-family shape, named by the preset needing the fewest knobs (the artifact keeps every field)."""
    pre = config["model_type"] == "roberta-prelayernorm"
    d, h = config["hidden_size"], config["num_attention_heads"]
    roberta = config["model_type"] != "bert"
    pad = config.get("pad_token_id")
    fields = dict(
        num_encoder_layers=config["num_hidden_layers"],
        d_model=d,
        d_ff=config["intermediate_size"],
        num_heads=h,
        d_kv=d // h,
        vocab_size=config["vocab_size"],
        shared_heads=False,
        tied_kv=False,
        ffn_activation=_BERT_ACTIVATIONS[config.get("hidden_act", "gelu")],
        ffn_gating="none",
        tie_embeddings=tied,
        position_embedding="learned",
        max_length=config.get("max_position_embeddings", 512),
        norm_kind="layer",
        norm_position="pre" if pre else "post",
        norm_eps=config.get("layer_norm_eps", 1e-12),
        attention_bias=True,
        linear_bias=True,
        type_vocab_size=config.get("type_vocab_size", 2),
        embedding_norm=True,
        final_norm=pre,
        head_transform=True,
        decoder_bias=True,
        sparse_prediction=False,
        layer_sharing="none",
        dropout_rate=config.get("hidden_dropout_prob", 0.1),
        pad_id=(1 if roberta else 0) if pad is None else pad,
        roberta_positions=roberta,
    )
    presets = [p for n, p in shapes.BERT_PRESETS.items() if n != "crammed-bert"]
    try:
        candidates = [dataclasses.replace(p, **fields) for p in presets]
    except shapes.ShapeError as e:
        raise ConversionError(f"{where}: {e}") from None
    # a preset of the same norm position (bert-* post, roberta-l*-h* pre), then fewest knobs, then preset order
    return min(
        candidates,
        key=lambda s: (
            shapes.BERT_PRESETS[s.preset].norm_position != s.norm_position,
            s.name.count("-") - s.preset.count("-"),
        ),
    )


def _rename_legacy(found: dict[str, tuple[int, ...]], read: Callable[[str], np.ndarray]):
    """Old BERT files name LayerNorm parameters gamma/beta; transformers reads them as weight/bias."""
    names = {}
    for name in found:
        stem, _, leaf = name.rpartition(".")
        names[f"{stem}.{ {'gamma': 'weight', 'beta': 'bias'}.get(leaf, leaf) }" if stem else name] = name
    return {new: found[old] for new, old in names.items()}, lambda name: read(names[name])


def load_bert(path: str | os.PathLike) -> tuple[Any, shapes.Shape]:
    """Our Bert holding a Hugging Face BertForMaskedLM / RobertaForMaskedLM / RobertaPreLayerNormForMaskedLM
    checkpoint's weights exactly, and its shape. `model(tokens)` gives float32 MLM logits [batch, length, vocab]."""
    directory = Path(path)
    config = read_bert_config(directory)
    found, read, where = _weight_files(directory)
    found, read = _rename_legacy(found, read)
    p, head, _ = _BERT_TYPES[config["model_type"]]
    pre = config["model_type"] == "roberta-prelayernorm"
    # pretraining checkpoints carry a pooler and a next-sentence head that *ForMaskedLM does not use.
    unused = (f"{p}.pooler.", "cls.seq_relationship.", f"{p}.embeddings.position_ids", f"{p}.embeddings.token_type_ids")
    t = Tensors(found, read, where, ignore=lambda n: n.startswith(unused))
    d, h, f, v = (config[n] for n in ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"))
    k, n_pos, n_types = d // h, config.get("max_position_embeddings", 512), config.get("type_vocab_size", 2)
    embedding = t.take(f"{p}.embeddings.word_embeddings.weight", (v, d))
    # As transformers 5 loads them: tied (the default) means the decoder is the word embedding and its bias
    # `{head}.bias` (stored copies are ignored); untied, the decoder's own weight and bias compute the logits
    # and `{head}.bias` is unused.
    tied = config.get("tie_word_embeddings", True) is not False
    decoder, decoder_bias = f"{head}.decoder.weight", f"{head}.decoder.bias"
    shape = _bert_shape(config, tied, where)
    bias = t.take(f"{head}.bias", (v,))
    if tied:
        t.skip(decoder)
        t.skip(decoder_bias)
    elif decoder_bias in t:
        bias = t.take(decoder_bias, (v,))

    def ln(name: str) -> tuple[np.ndarray, np.ndarray]:
        return t.take(f"{name}.weight", (d,)), t.take(f"{name}.bias", (d,))

    layers = []
    for i in range(shape.num_encoder_layers):
        b = f"{p}.encoder.layer.{i}"
        layer = {}
        for name in ("query", "key", "value"):
            layer[f"attention.{name}"] = split_heads(t.take(f"{b}.attention.self.{name}.weight", (d, d)).T, h)
            layer[f"attention.{name}_bias"] = t.take(f"{b}.attention.self.{name}.bias", (d,)).reshape(h, k)
        layer["attention.out"] = t.take(f"{b}.attention.output.dense.weight", (d, d)).T.reshape(h, k, d)
        layer["attention.out_bias"] = t.take(f"{b}.attention.output.dense.bias", (d,))
        layer["mlp.wi"] = t.take(f"{b}.intermediate.dense.weight", (f, d)).T
        layer["mlp.wi_bias"] = t.take(f"{b}.intermediate.dense.bias", (f,))
        layer["mlp.wo"] = t.take(f"{b}.output.dense.weight", (d, f)).T
        layer["mlp.wo_bias"] = t.take(f"{b}.output.dense.bias", (d,))
        norms = (
            (f"{b}.attention.LayerNorm", f"{b}.intermediate.LayerNorm")
            if pre
            else (
                f"{b}.attention.output.LayerNorm",
                f"{b}.output.LayerNorm",
            )
        )
        for ours, theirs in zip(("attention_norm", "mlp_norm"), norms, strict=True):
            layer[f"{ours}.scale"], layer[f"{ours}.bias"] = ln(theirs)
        layers.append(layer)
    transform = f"{head}.transform.dense" if head == "cls.predictions" else f"{head}.dense"
    head_norm = f"{head}.transform.LayerNorm" if head == "cls.predictions" else f"{head}.layer_norm"
    arrays = {
        "embedding": embedding,
        "position_embedding": t.take(f"{p}.embeddings.position_embeddings.weight", (n_pos, d)),
        "head_dense": t.take(f"{transform}.weight", (d, d)).T,
        "head_dense_bias": t.take(f"{transform}.bias", (d,)),
        "decoder_bias_value": bias,
        **{f"layers.{key}": np.stack([layer[key] for layer in layers]) for key in layers[0]},
    }
    if n_types:
        arrays["type_embedding"] = t.take(f"{p}.embeddings.token_type_embeddings.weight", (n_types, d))
    arrays["embedding_norm.scale"], arrays["embedding_norm.bias"] = ln(f"{p}.embeddings.LayerNorm")
    arrays["head_norm.scale"], arrays["head_norm.bias"] = ln(head_norm)
    if pre:
        arrays["final_norm.scale"], arrays["final_norm.bias"] = ln(f"{p}.LayerNorm")
    if not tied:
        arrays["decoder"] = t.take(decoder, (v, d)).T
    t.check_all_taken()
    return assemble(shape, arrays, where), shape


def _bert_type(shape: shapes.Shape) -> str:
    """The transformers model_type that computes this shape exactly, or a one-line ConversionError."""
    if shape.family != "bert":
        raise ConversionError(f"shape {shape.name} is a {shape.family} shape; only the BERT family exports as BERT")
    needs = {
        "position_embedding": "learned",
        "norm_kind": "layer",
        "attention_bias": True,
        "linear_bias": True,
        "ffn_gating": "none",
        "shared_heads": False,
        "tied_kv": False,
        "layer_sharing": "none",
        "embedding_norm": True,
        "head_transform": True,
        "decoder_bias": True,
        "final_norm": shape.norm_position == "pre",
    }
    wrong = {k: getattr(shape, k) for k, want in needs.items() if getattr(shape, k) != want}
    if shape.type_vocab_size < 1:
        wrong["type_vocab_size"] = shape.type_vocab_size
    if shape.norm_position == "pre" and not shape.roberta_positions:
        wrong["roberta_positions (pre-norm exports as roberta-prelayernorm)"] = False
    if not shape.roberta_positions and shape.ffn_activation != "gelu_exact":
        wrong["ffn_activation (BERT's head uses it; ours is gelu_exact)"] = shape.ffn_activation
    if wrong:
        raise ConversionError(f"shape {shape.name}: no Hugging Face BERT/RoBERTa computes {wrong}")
    if shape.norm_position == "pre":
        return "roberta-prelayernorm"
    return "roberta" if shape.roberta_positions else "bert"


def hf_bert_config(shape: shapes.Shape) -> dict[str, Any]:
    """A transformers BertConfig / RobertaConfig / RobertaPreLayerNormConfig dict for the shape."""
    kind = _bert_type(shape)
    act = {"gelu_exact": "gelu", "gelu": "gelu_new", "relu": "relu"}[shape.ffn_activation]
    return {
        "architectures": [_BERT_TYPES[kind][2]],
        "model_type": kind,
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.d_model,
        "num_hidden_layers": shape.num_encoder_layers,
        "num_attention_heads": shape.num_heads,
        "intermediate_size": shape.d_ff,
        "hidden_act": act,
        "hidden_dropout_prob": shape.dropout_rate,
        "attention_probs_dropout_prob": shape.dropout_rate,
        "max_position_embeddings": shape.max_length,
        "type_vocab_size": shape.type_vocab_size,
        "layer_norm_eps": shape.norm_eps,
        "position_embedding_type": "absolute",
        "pad_token_id": shape.pad_id,
        "tie_word_embeddings": shape.tie_embeddings,
        "initializer_range": 0.02,
        "scaling_shape": shape.name,
    }


def _flat(model_or_params: Any) -> dict[str, np.ndarray]:
    """Our parameter paths → float32 arrays, from a model, an nnx.State or a (nested or flat) mapping."""
    from flax import nnx
    from flax.traverse_util import flatten_dict

    if isinstance(model_or_params, nnx.Module):
        return flat_arrays(model_or_params)
    tree = nnx.to_pure_dict(model_or_params) if isinstance(model_or_params, nnx.State) else model_or_params
    flat = flatten_dict(dict(tree), sep=".") if any(isinstance(x, dict) for x in tree.values()) else tree
    return {k: np.asarray(v, np.float32) for k, v in flat.items()}


def hf_bert_tensors(model_or_params: Any, shape: shapes.Shape) -> dict[str, np.ndarray]:
    """transformers tensor names → arrays (contiguous float32, torch [out, in] layout) for a BERT-family model."""
    kind = _bert_type(shape)
    p, head, _ = _BERT_TYPES[kind]
    ours, d = _flat(model_or_params), shape.d_model
    out = {
        f"{p}.embeddings.word_embeddings.weight": ours["embedding"],
        f"{p}.embeddings.position_embeddings.weight": ours["position_embedding"],
        f"{p}.embeddings.token_type_embeddings.weight": ours["type_embedding"],
        f"{p}.embeddings.LayerNorm.weight": ours["embedding_norm.scale"],
        f"{p}.embeddings.LayerNorm.bias": ours["embedding_norm.bias"],
        f"{head}.bias": ours["decoder_bias_value"],
    }
    transform, head_norm = (
        (f"{head}.transform.dense", f"{head}.transform.LayerNorm")
        if kind == "bert"
        else (f"{head}.dense", f"{head}.layer_norm")
    )
    out |= {f"{transform}.weight": ours["head_dense"].T, f"{transform}.bias": ours["head_dense_bias"]}
    out |= {f"{head_norm}.weight": ours["head_norm.scale"], f"{head_norm}.bias": ours["head_norm.bias"]}
    if not shape.tie_embeddings:
        out[f"{head}.decoder.weight"] = ours["decoder"].T
        out[f"{head}.decoder.bias"] = ours["decoder_bias_value"]
    if kind == "roberta-prelayernorm":
        out |= {f"{p}.LayerNorm.weight": ours["final_norm.scale"], f"{p}.LayerNorm.bias": ours["final_norm.bias"]}
        norms = ("attention.LayerNorm", "intermediate.LayerNorm")
    else:
        norms = ("attention.output.LayerNorm", "output.LayerNorm")
    for i in range(shape.num_encoder_layers):
        b = f"{p}.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            out[f"{b}.attention.self.{name}.weight"] = ours[f"layers.attention.{name}"][i].reshape(d, d).T
            out[f"{b}.attention.self.{name}.bias"] = ours[f"layers.attention.{name}_bias"][i].reshape(d)
        out[f"{b}.attention.output.dense.weight"] = ours["layers.attention.out"][i].reshape(d, d).T
        out[f"{b}.attention.output.dense.bias"] = ours["layers.attention.out_bias"][i]
        out[f"{b}.intermediate.dense.weight"] = ours["layers.mlp.wi"][i].T
        out[f"{b}.intermediate.dense.bias"] = ours["layers.mlp.wi_bias"][i]
        out[f"{b}.output.dense.weight"] = ours["layers.mlp.wo"][i].T
        out[f"{b}.output.dense.bias"] = ours["layers.mlp.wo_bias"][i]
        for src, dst in zip(("attention_norm", "mlp_norm"), norms, strict=True):
            out[f"{b}.{dst}.weight"] = ours[f"layers.{src}.scale"][i]
            out[f"{b}.{dst}.bias"] = ours[f"layers.{src}.bias"][i]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def export_bert(model_or_params: Any, shape: shapes.Shape, directory: str | os.PathLike) -> Path:
    """Writes config.json and model.safetensors that `BertForMaskedLM` / `RobertaForMaskedLM` /
    `RobertaPreLayerNormForMaskedLM.from_pretrained` load with exactly these tensors."""
    directory = Path(directory)
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise _needs_safetensors(directory / "model.safetensors") from None
    config, tensors = hf_bert_config(shape), hf_bert_tensors(model_or_params, shape)
    if (directory / "config.json").exists():
        raise FileExistsError(f"{directory / 'config.json'} exists; export into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory
