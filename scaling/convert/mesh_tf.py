"""Mesh TensorFlow T5 checkpoints in: the *Scale Efficiently* `bi_v1_*` releases and T5's own.

    model, shape = load_t5("bi_v1_small_el16_…/")   # the directory's latest model.ckpt-N, or a prefix
    model, shape = load_t5("…/model.ckpt-524288")

The shape comes from the run's `operative_config.gin` (beside the checkpoint): layer stacks
(`encoder/make_layer_stack.num_layers`), `d_model`, `DenseReluDense.hidden_size` and `.activation`,
`SelfAttention.num_heads`, `.key_value_size`, `.num_memory_heads` (1 = our SH) and `.shared_kv` (our SKV),
`Unitransformer.shared_embedding_and_softmax_weights` (tied, logits scaled by d_model^-0.5) and
`sublayer_rms_norm.epsilon`; the vocabulary size from `shared/embedding`. Mesh TF stores attention with heads
and d_kv combined (`q` [d_model, heads·d_kv], `o` [heads·d_kv, d_model]), the position table as [heads,
buckets] in block 0 of each stack ('bias_shared'), and Adafactor slots (`*_slot_v*`) we skip.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from scaling import shapes
from scaling.convert.gin import GinConfig
from scaling.convert.params import (
    ConversionError,
    Tensors,
    assemble,
    infer_shape,
    split_heads,
)
from scaling.models.t5 import T5

GIN_FILE = "operative_config.gin"
_IGNORED = re.compile(r"^global_step$|_slot_(vc|vr|v|m)$")


def _checkpoint(path: Path) -> tuple[Tensors, Path]:
    """The checkpoint's tensors and the directory that holds it (and its operative config)."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(path))
    except (ValueError, tf.errors.NotFoundError, tf.errors.DataLossError) as e:
        raise FileNotFoundError(f"{path}: no readable TF checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    where = tf.train.latest_checkpoint(str(path)) if path.is_dir() else str(path)
    tensors = Tensors(
        reader.get_variable_to_shape_map(),
        reader.get_tensor,
        str(where),
        ignore=lambda name: bool(_IGNORED.search(name)),
    )
    return tensors, path if path.is_dir() else path.parent


def _activation(gin: GinConfig, scope: str) -> tuple[str, str]:
    value = gin.get(scope, ["DenseReluDense"], "activation", "relu")
    if isinstance(value, str) and value in ("relu", "gelu"):
        return value, "none"
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] in ("relu", "gelu") and value[1] == "linear":
        return value[0], "gated"
    raise ConversionError(
        f"{gin.where}: {scope}/DenseReluDense.activation = {value!r} is not expressible; "
        f"use 'relu', 'gelu', or a gated ['relu'|'gelu', 'linear']"
    )


def _agreed(gin: GinConfig, what: str, values: dict[str, Any]) -> Any:
    """One value for a setting that our shape holds once but the config sets per stack."""
    if len(set(map(repr, values.values()))) != 1:
        raise ConversionError(f"{gin.where}: {what} differs between {values}; our T5 uses one value for all stacks")
    return next(iter(values.values()))


def read_shape(gin: GinConfig, vocab_size: int) -> shapes.Shape:
    """The Shape the operative config describes (the vocabulary size comes from the checkpoint)."""
    attention = {
        "encoder/SelfAttention": ("encoder", ["SelfAttention"]),
        "decoder/SelfAttention": ("decoder", ["SelfAttention"]),
        "decoder/EncDecAttention": ("decoder", ["EncDecAttention", "SelfAttention"]),
    }

    def per_attention(param: str, default: Any = KeyError) -> Any:
        return _agreed(gin, f"{param}", {k: gin.get(s, n, param, default) for k, (s, n) in attention.items()})

    def per_stack(name: str, param: str, default: Any = KeyError) -> dict[str, Any]:
        return {f"{s}/{name}.{param}": gin.get(s, [name], param, default) for s in ("encoder", "decoder")}

    for key, (scope, names) in attention.items():
        relative = gin.get(scope, names, "relative_attention_type", None)
        wanted = None if key.endswith("EncDecAttention") else "bias_shared"
        if relative != wanted:
            raise ConversionError(
                f"{gin.where}: {key}.relative_attention_type = {relative!r}; our T5 needs "
                f"{wanted!r} (one position table per stack, none in cross-attention)"
            )
    memory_heads = per_attention("num_memory_heads", 0)
    if memory_heads not in (0, 1):
        raise ConversionError(
            f"{gin.where}: SelfAttention.num_memory_heads = {memory_heads}; expressible are 0 "
            f"(every head has keys and values) and 1 (one shared head: SH)"
        )
    if any(per_stack("DenseReluDense", "use_bias", False).values()):
        raise ConversionError(f"{gin.where}: DenseReluDense.use_bias = True; our T5 feed-forward has no biases")
    if not gin.get("", ["Bitransformer"], "shared_embedding", True):
        raise ConversionError(f"{gin.where}: Bitransformer.shared_embedding = False; our T5 has one embedding")
    d_model = _agreed(gin, "d_model", per_stack("Unitransformer", "d_model", gin.macro("d_model", None)))
    layers = per_stack("make_layer_stack", "num_layers", gin.macro("num_layers", None))
    activation, gating = _agreed(
        gin, "DenseReluDense.activation", {s: _activation(gin, s) for s in ("encoder", "decoder")}
    )
    tied = gin.get("decoder", ["Unitransformer"], "shared_embedding_and_softmax_weights", False)
    buckets = per_attention("relative_attention_num_buckets", 32)
    return infer_shape(
        gin.where,
        num_encoder_layers=layers["encoder/make_layer_stack.num_layers"],
        num_decoder_layers=layers["decoder/make_layer_stack.num_layers"],
        d_model=d_model,
        d_ff=_agreed(gin, "DenseReluDense.hidden_size", per_stack("DenseReluDense", "hidden_size")),
        num_heads=per_attention("num_heads"),
        d_kv=per_attention("key_value_size"),
        vocab_size=vocab_size,
        ffn_activation=activation,
        ffn_gating=gating,
        tie_embeddings=bool(tied),
        shared_heads=memory_heads == 1,
        tied_kv=bool(per_attention("shared_kv", False)),
        relpos_buckets=buckets,
        norm_eps=gin.get("encoder", ["sublayer_rms_norm"], "epsilon", 1e-6),
        dropout_rate=gin.macro("dropout_rate", 0.0),
    )


def load_t5(path: str | os.PathLike, gin_path: str | os.PathLike | None = None) -> tuple[T5, shapes.Shape]:
    """Our T5 holding a Mesh TF T5 checkpoint's weights exactly, and its shape."""
    t, directory = _checkpoint(Path(path))
    gin = GinConfig.read(gin_path or directory / GIN_FILE)
    vocab_size, d_model = t.shape("shared/embedding")
    shape = read_shape(gin, vocab_size)
    if shape.d_model != d_model:
        raise ConversionError(
            f"{t.where}: shared/embedding is {d_model} wide, but {gin.where} says d_model = {shape.d_model}"
        )
    d, h, k, f, kvh = shape.d_model, shape.num_heads, shape.d_kv, shape.d_ff, shape.num_kv_heads

    def norm(prefix: str) -> np.ndarray:
        name = f"{prefix}/rms_norm/scale" if f"{prefix}/rms_norm/scale" in t else f"{prefix}/layer_norm/scale"
        return t.take(name, (d,))

    def attention(prefix: str) -> dict[str, np.ndarray]:
        out = {
            "query": split_heads(t.take(f"{prefix}/q", (d, h * k)), h),
            "out": t.take(f"{prefix}/o", (h * k, d)).reshape(h, k, d),
        }
        if shape.tied_kv:
            return out | {"key": split_heads(t.take(f"{prefix}/kv", (d, kvh * k)), kvh)}
        return out | {
            "key": split_heads(t.take(f"{prefix}/k", (d, kvh * k)), kvh),
            "value": split_heads(t.take(f"{prefix}/v", (d, kvh * k)), kvh),
        }

    def mlp(prefix: str) -> dict[str, np.ndarray]:
        if shape.ffn_gating == "gated":
            out = {"wi": t.take(f"{prefix}/wi_0/kernel", (d, f)), "wi_gate": t.take(f"{prefix}/wi_1/kernel", (d, f))}
        else:
            out = {"wi": t.take(f"{prefix}/wi/kernel", (d, f))}
        return out | {"wo": t.take(f"{prefix}/wo/kernel", (f, d))}

    def sublayers(stack: str, i: int, parts: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
        layer = {}
        for j, (ours, theirs, norm_name) in enumerate(parts):
            prefix = f"{stack}/block_{i:03d}/layer_{j:03d}"
            weights = mlp(f"{prefix}/{theirs}") if theirs == "DenseReluDense" else attention(f"{prefix}/{theirs}")
            layer |= {f"{ours}.{n}": w for n, w in weights.items()} | {f"{norm_name}.scale": norm(prefix)}
        return layer

    encoder = [
        sublayers(
            "encoder", i, [("attention", "SelfAttention", "attention_norm"), ("mlp", "DenseReluDense", "mlp_norm")]
        )
        for i in range(shape.num_encoder_layers)
    ]
    decoder = [
        sublayers(
            "decoder",
            i,
            [
                ("self_attention", "SelfAttention", "self_attention_norm"),
                ("cross_attention", "EncDecAttention", "cross_attention_norm"),
                ("mlp", "DenseReluDense", "mlp_norm"),
            ],
        )
        for i in range(shape.num_decoder_layers)
    ]

    def final_norm(stack: str) -> np.ndarray:
        name = f"{stack}/rms_norm/scale" if f"{stack}/rms_norm/scale" in t else f"{stack}/final_layer_norm/scale"
        return t.take(name, (d,))

    def relpos(stack: str) -> np.ndarray:
        return t.take(f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias", (h, shape.relpos_buckets)).T

    arrays = {
        "embedding": t.take("shared/embedding", (shape.vocab_size, d)),
        "encoder_relpos.table": relpos("encoder"),
        "decoder_relpos.table": relpos("decoder"),
        "encoder_norm.scale": final_norm("encoder"),
        "decoder_norm.scale": final_norm("decoder"),
        **{f"encoder_layers.{key}": np.stack([x[key] for x in encoder]) for key in encoder[0]},
        **{f"decoder_layers.{key}": np.stack([x[key] for x in decoder]) for key in decoder[0]},
    }
    if not shape.tie_embeddings:
        arrays["lm_head"] = t.take("decoder/logits/kernel", (d, shape.vocab_size))
    t.check_all_taken()
    return assemble(shape, arrays, t.where), shape
