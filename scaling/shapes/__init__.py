"""Model shapes: size presets plus the scaling operators of *Scale Efficiently* (Tay et al., 2022).

A shape is a preset (T5 tiny…xxxl, BERT/RoBERTa encoders, the crammed BERT) with knobs applied:

    NL  layers of both stacks      EL / DL  encoder / decoder layers     DM  d_model
    FF  d_ff                       NH       number of heads              KV  d_kv (per-head size)
    SH  shared heads (one key/value head shared by every query head: multi-query attention)
    SKV tied key-values (keys and values come from one projection)

Names round-trip: `parse(name).name` is the canonical spelling (`small-nl24`, `base-ff2k`, `small-el16-dl4`),
and every accepted spelling — `small_nl24`, the paper's `NL32-XL`, `DM2K-BA`, Table 4's `Small 16L`,
`Mini-8L`, `Small 32EL` — parses to the same `Shape`. `k` means 1024 (`ff2k` = 2048).

Run `python -m scaling.shapes small_nl24 NL32-XL --json` to print knobs, parameter counts and FLOPs.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from scaling.data.vocab import NUM_EXTRA_IDS, T5_VOCAB_SIZE
from scaling.errors import UserError

Family = Literal["t5", "bert"]


class ShapeError(UserError):
    """A shape name or field that cannot describe a valid model."""


@dataclasses.dataclass(frozen=True)
class Shape:
    """Everything that determines a model's parameters and compute; no training settings."""

    family: Family
    preset: str
    num_encoder_layers: int
    num_decoder_layers: int
    d_model: int
    d_ff: int
    num_heads: int
    d_kv: int
    vocab_size: int
    # Scale Efficiently's attention knobs.
    shared_heads: bool = False
    tied_kv: bool = False
    # Feed-forward block: "gated" is T5 v1.1 (two d_model→d_ff inputs, product); "split" is Cramming's GLU
    # (one d_model→d_ff input split into halves, no width compensation).
    # "gelu" is the tanh approximation; "gelu_exact" the erf GELU of Hugging Face BERT/RoBERTa (BERT family only).
    ffn_activation: Literal["relu", "gelu", "gelu_exact"] = "relu"
    ffn_gating: Literal["none", "gated", "split"] = "none"
    # Output layer. T5 v1.0 ties it to the input embedding and scales logits by d_model**-0.5.
    tie_embeddings: bool = True
    # Positions: T5 relative buckets, or absolute embeddings for BERT.
    position_embedding: Literal["relative", "learned", "sinusoidal", "scaled-sinusoidal"] = "relative"
    relpos_buckets: int = 32
    relpos_max_distance: int = 128
    max_length: int = 512
    # Normalisation: T5 uses RMS norm before each sublayer; BERT a LayerNorm after (post) or before (pre).
    norm_kind: Literal["rms", "layer"] = "rms"
    norm_position: Literal["pre", "post"] = "pre"
    norm_eps: float = 1e-6
    # BERT switches (Cramming Section 4.2; ALBERT-style sharing from Train Large, Then Compress App. C).
    attention_bias: bool = False
    linear_bias: bool = False
    type_vocab_size: int = 0
    embedding_norm: bool = False
    final_norm: bool = True
    head_transform: bool = False
    decoder_bias: bool = False
    sparse_prediction: bool = False
    layer_sharing: Literal["none", "all", "attention"] = "none"
    dropout_rate: float = 0.0
    # Padding (BERT family): the token id that is masked out of attention (RoBERTa checkpoints use 1), and
    # RoBERTa's position ids: the n-th non-pad token reads position row pad_id + n, pads row pad_id.
    pad_id: int = 0
    roberta_positions: bool = False

    def __post_init__(self) -> None:
        validate(self)

    @property
    def name(self) -> str:
        """Canonical name: preset plus the knobs that differ from it, e.g. `small-nl24`."""
        return canonical_name(self)

    @property
    def is_encoder_decoder(self) -> bool:
        return self.family == "t5"

    @property
    def num_kv_heads(self) -> int:
        return 1 if self.shared_heads else self.num_heads

    @property
    def ffn_hidden(self) -> int:
        """Width of the activation that feeds the output projection."""
        return self.d_ff // 2 if self.ffn_gating == "split" else self.d_ff

    def knobs(self) -> dict[str, int | bool]:
        return {
            "NL": self.num_encoder_layers if self.num_encoder_layers == self.num_decoder_layers else None,
            "EL": self.num_encoder_layers,
            "DL": self.num_decoder_layers,
            "DM": self.d_model,
            "FF": self.d_ff,
            "NH": self.num_heads,
            "KV": self.d_kv,
            "SH": self.shared_heads,
            "SKV": self.tied_kv,
        }


def validate(s: Shape) -> None:
    """Fails on the first field that cannot build a model, naming it and the fix."""

    def fail(field: str, why: str) -> None:
        raise ShapeError(f"shape {s.preset!r}: {field} {why}")

    for field in ("num_encoder_layers", "d_model", "d_ff", "num_heads", "d_kv", "vocab_size", "max_length"):
        value = getattr(s, field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            fail(field, f"must be a positive integer, got {value!r}")
    if s.family not in ("t5", "bert"):
        fail("family", f"must be 't5' or 'bert', got {s.family!r}")
    if s.family == "t5":
        if not isinstance(s.num_decoder_layers, int) or s.num_decoder_layers <= 0:
            fail("num_decoder_layers", f"must be a positive integer for T5, got {s.num_decoder_layers!r}")
        if s.vocab_size <= NUM_EXTRA_IDS + 2:
            fail("vocab_size", f"= {s.vocab_size} leaves no room beside the {NUM_EXTRA_IDS} sentinels, pad and EOS")
        if s.position_embedding != "relative":
            fail("position_embedding", "must be 'relative' for T5")
        if s.layer_sharing != "none":
            fail("layer_sharing", "is a BERT switch; T5 shapes do not share layers")
    else:
        if s.num_decoder_layers != 0:
            fail("num_decoder_layers", f"must be 0 for an encoder-only BERT shape, got {s.num_decoder_layers}")
        if s.num_heads * s.d_kv != s.d_model:
            fail("num_heads", f"= {s.num_heads} does not divide d_model = {s.d_model} (BERT heads are d_model/NH wide)")
    if s.ffn_gating == "split" and s.d_ff % 2:
        fail("d_ff", f"= {s.d_ff} must be even for the split (GLU) feed-forward")
    choices = {
        "ffn_activation": ("relu", "gelu", "gelu_exact"),
        "ffn_gating": ("none", "gated", "split"),
        "position_embedding": ("relative", "learned", "sinusoidal", "scaled-sinusoidal"),
        "norm_kind": ("rms", "layer"),
        "norm_position": ("pre", "post"),
        "layer_sharing": ("none", "all", "attention"),
    }
    for field, allowed in choices.items():
        if getattr(s, field) not in allowed:
            fail(field, f"must be one of {allowed}, got {getattr(s, field)!r}")
    if s.relpos_buckets <= 0 or s.relpos_max_distance <= 0:
        fail("relpos_buckets", "and relpos_max_distance must be positive")
    if not 0.0 <= s.dropout_rate < 1.0:
        fail("dropout_rate", f"must be in [0, 1), got {s.dropout_rate}")
    if s.type_vocab_size < 0:
        fail("type_vocab_size", f"must be >= 0, got {s.type_vocab_size}")
    if s.family == "t5" and (s.ffn_activation == "gelu_exact" or s.pad_id != 0 or s.roberta_positions):
        fail("ffn_activation", "gelu_exact, pad_id and roberta_positions are BERT switches")
    if not 0 <= s.pad_id < s.vocab_size:
        fail("pad_id", f"= {s.pad_id} must be a token id in [0, vocab_size)")
    if s.roberta_positions and (s.position_embedding != "learned" or s.pad_id + 1 >= s.max_length):
        fail("roberta_positions", "needs learned positions and max_length > pad_id + 1")


# ----------------------------------------------------------------------------------------------- presets


def _t5(preset: str, layers: int, d_ff: int, d_model: int, d_kv: int, heads: int) -> Shape:
    return Shape(
        family="t5",
        preset=preset,
        num_encoder_layers=layers,
        num_decoder_layers=layers,
        d_model=d_model,
        d_ff=d_ff,
        num_heads=heads,
        d_kv=d_kv,
        vocab_size=T5_VOCAB_SIZE,
        dropout_rate=0.1,
    )


def _bert(preset: str, layers: int, d_model: int, heads: int, d_ff: int, vocab: int, **switches) -> Shape:
    base = dict(
        family="bert",
        preset=preset,
        num_encoder_layers=layers,
        num_decoder_layers=0,
        d_model=d_model,
        d_ff=d_ff,
        num_heads=heads,
        d_kv=d_model // heads,
        vocab_size=vocab,
        ffn_activation="gelu",
        tie_embeddings=True,
        position_embedding="learned",
        max_length=512,
        norm_kind="layer",
        norm_position="post",
        norm_eps=1e-12,
        attention_bias=True,
        linear_bias=True,
        type_vocab_size=2,
        embedding_norm=True,
        final_norm=False,
        head_transform=True,
        decoder_bias=True,
        dropout_rate=0.1,
    )
    return Shape(**{**base, **switches})


# Scale Efficiently Table 1 (d_kv = 64 for tiny/mini/small, as in the released checkpoints).
T5_PRESETS: dict[str, Shape] = {
    "tiny": _t5("tiny", 4, 1024, 256, 64, 4),
    "mini": _t5("mini", 4, 1536, 384, 64, 8),
    "small": _t5("small", 6, 2048, 512, 64, 8),
    "base": _t5("base", 12, 3072, 768, 64, 12),
    "large": _t5("large", 24, 4096, 1024, 64, 16),
    "xl": _t5("xl", 24, 16384, 1024, 128, 32),
    "xxl": _t5("xxl", 24, 65536, 1024, 128, 128),
    "xxxl": _t5("xxxl", 28, 131072, 1280, 128, 256),
}

# The paper's two-letter size codes (NL32-SM, DM2K-BA, NL32-LG).
T5_ABBREVIATIONS = {"ti": "tiny", "mi": "mini", "sm": "small", "ba": "base", "lg": "large"}

BERT_PRESETS: dict[str, Shape] = {
    "bert-tiny": _bert("bert-tiny", 2, 128, 2, 512, 30522),
    "bert-mini": _bert("bert-mini", 4, 256, 4, 1024, 30522),
    "bert-base": _bert("bert-base", 12, 768, 12, 3072, 30522),
    "bert-large": _bert("bert-large", 24, 1024, 16, 4096, 30522),
    # Cramming's final recipe: 16 pre-LN layers, no biases, GLU FFN without width compensation, scaled
    # sinusoidal positions, norm after the embedding and at the end, no head transform or decoder bias,
    # sparse prediction, sequence length 128, vocabulary 2^15.
    "crammed-bert": _bert(
        "crammed-bert",
        16,
        768,
        12,
        3072,
        32768,
        ffn_gating="split",
        position_embedding="scaled-sinusoidal",
        max_length=128,
        norm_position="pre",
        attention_bias=False,
        linear_bias=False,
        type_vocab_size=0,
        final_norm=True,
        head_transform=False,
        decoder_bias=False,
        sparse_prediction=True,
        dropout_rate=0.0,
    ),
}
# Train Large, Then Compress: RoBERTa encoders over depth × hidden, FFN 4H, H/64 heads, with the layer norm
# moved to the input of every sub-layer (pre-norm, Section 2.1) and so a final norm.
LI_DEPTHS = (3, 6, 12, 18, 24)
LI_WIDTHS = (256, 512, 768, 1024, 1536)
for _depth in LI_DEPTHS:
    for _width in LI_WIDTHS:
        _name = f"roberta-l{_depth}-h{_width}"
        BERT_PRESETS[_name] = _bert(
            _name,
            _depth,
            _width,
            _width // 64,
            4 * _width,
            50265,
            type_vocab_size=0,
            norm_position="pre",
            final_norm=True,
        )

PRESETS: dict[str, Shape] = {**T5_PRESETS, **BERT_PRESETS}

# ------------------------------------------------------------------------------------------------- names

_OPS = ("nl", "el", "dl", "dm", "ff", "nh", "kv")
_FLAGS = ("sh", "skv")
V1_1 = "v1_1"
_OP_RE = re.compile(r"^(nl|el|dl|dm|ff|nh|kv)(\d+)(k?)$")
_TABLE4_RE = re.compile(r"^(\d+)(l|el|dl)$")  # "16L", "32EL" in Table 4 labels


def _fmt(value: int) -> str:
    return f"{value // 1024}k" if value >= 1024 and value % 1024 == 0 else str(value)


def canonical_name(s: Shape) -> str:
    base = PRESETS.get(s.preset)
    if base is None:
        return s.preset
    parts = [s.preset]
    if s.num_encoder_layers == s.num_decoder_layers or s.family == "bert":
        if s.num_encoder_layers != base.num_encoder_layers:
            parts.append(f"nl{s.num_encoder_layers}")
    else:
        if s.num_encoder_layers != base.num_encoder_layers:
            parts.append(f"el{s.num_encoder_layers}")
        if s.num_decoder_layers != base.num_decoder_layers:
            parts.append(f"dl{s.num_decoder_layers}")
    for op, field in (("dm", "d_model"), ("ff", "d_ff"), ("nh", "num_heads")):
        if getattr(s, field) != getattr(base, field):
            parts.append(f"{op}{_fmt(getattr(s, field))}")
    if s.family == "t5" and s.d_kv != base.d_kv:
        parts.append(f"kv{_fmt(s.d_kv)}")
    if s.shared_heads:
        parts.append("sh")
    if s.tied_kv:
        parts.append("skv")
    if s.family == "t5" and s.ffn_gating == "gated" and not s.tie_embeddings:
        parts.append(V1_1)
    return "-".join(parts)


def _accepted() -> str:
    named_bert = sorted(k for k in BERT_PRESETS if not k.startswith("roberta-l"))
    return (
        f"a preset ({', '.join(T5_PRESETS)}, {', '.join(named_bert)}, "
        f"roberta-l{{{','.join(map(str, LI_DEPTHS))}}}-h{{{','.join(map(str, LI_WIDTHS))}}}; "
        f"codes {', '.join(k.upper() for k in T5_ABBREVIATIONS)}) joined by '-', '_' or ' ' with knobs "
        f"NL<n> EL<n> DL<n> DM<n> FF<n> NH<n> KV<n> (k = 1024), SH, SKV, Table 4's <n>L / <n>EL, "
        f"and '{V1_1}' for T5 v1.1 style; e.g. small-nl24, NL32-XL, DM2K-BA, 'Small 16L', base-ff2k"
    )


def _split_preset(normalized: str) -> tuple[str, list[str]]:
    """Finds the preset inside a normalised name (it may lead or trail), returns it and the other tokens."""
    tokens = normalized.split("-")
    for preset in sorted(PRESETS, key=len, reverse=True):
        width = preset.count("-") + 1
        for start in (0, len(tokens) - width):
            if start >= 0 and "-".join(tokens[start : start + width]) == preset:
                return preset, tokens[:start] + tokens[start + width :]
    for i, tok in enumerate(tokens):
        if tok in T5_ABBREVIATIONS:
            return T5_ABBREVIATIONS[tok], tokens[:i] + tokens[i + 1 :]
    raise ShapeError(f"no preset in shape name; accepted: {_accepted()}")


def parse(name: str, **overrides) -> Shape:
    """Returns the Shape a name denotes; `overrides` set non-knob switches (dropout_rate, norm_eps, …)."""
    if not isinstance(name, str) or not name.strip():
        raise ShapeError(f"empty shape name; accepted: {_accepted()}")
    normalized = re.sub(r"[\s_]+", "-", name.strip().lower()).strip("-")
    normalized = normalized.replace("v1-1", V1_1)
    try:
        preset, tokens = _split_preset(normalized)
    except ShapeError as e:
        raise ShapeError(f"{name!r}: {e}") from None
    base = PRESETS[preset]
    values: dict[str, int] = {}
    flags: set[str] = set()
    for tok in tokens:
        if m := _OP_RE.match(tok):
            op, value = m.group(1), int(m.group(2)) * (1024 if m.group(3) else 1)
        elif m := _TABLE4_RE.match(tok):
            op, value = {"l": "nl", "el": "el", "dl": "dl"}[m.group(2)], int(m.group(1))
        elif tok in _FLAGS or tok == V1_1:
            if tok in flags:
                raise ShapeError(f"{name!r}: '{tok}' given twice")
            flags.add(tok)
            continue
        else:
            raise ShapeError(f"{name!r}: unknown knob {tok!r}; accepted: {_accepted()}")
        if op in values:
            raise ShapeError(f"{name!r}: knob {op.upper()} given twice ({values[op]} and {value})")
        values[op] = value
    if "nl" in values and ({"el", "dl"} & values.keys()):
        raise ShapeError(f"{name!r}: NL sets both stacks, so it contradicts EL/DL; use NL alone or EL and DL")
    if base.family == "bert":
        if "dl" in values:
            raise ShapeError(f"{name!r}: DL is for encoder-decoders; {preset} is encoder-only (use NL or EL)")
        if "kv" in values:
            raise ShapeError(f"{name!r}: KV is for T5 shapes; BERT heads are DM/NH wide (use NH or DM)")
        if V1_1 in flags:
            raise ShapeError(f"{name!r}: '{V1_1}' is a T5 style; {preset} is a BERT preset")
    fields: dict = {}
    if "nl" in values:
        fields["num_encoder_layers"] = values["nl"]
        if base.family == "t5":
            fields["num_decoder_layers"] = values["nl"]
    if "el" in values:
        fields["num_encoder_layers"] = values["el"]
    if "dl" in values:
        fields["num_decoder_layers"] = values["dl"]
    for op, field in (("dm", "d_model"), ("ff", "d_ff"), ("nh", "num_heads"), ("kv", "d_kv")):
        if op in values:
            fields[field] = values[op]
    if base.family == "bert" and ({"dm", "nh"} & values.keys()):
        d_model, heads = fields.get("d_model", base.d_model), fields.get("num_heads", base.num_heads)
        if d_model % heads:
            raise ShapeError(
                f"{name!r}: num_heads = {heads} does not divide d_model = {d_model}; "
                f"BERT heads are d_model/NH wide, so pick NH dividing DM"
            )
        fields["d_kv"] = d_model // heads
    fields["shared_heads"] = "sh" in flags
    fields["tied_kv"] = "skv" in flags
    if V1_1 in flags:
        fields.update(ffn_activation="gelu", ffn_gating="gated", tie_embeddings=False, dropout_rate=0.0)
    return dataclasses.replace(base, **{**fields, **overrides})


# Fields a name's knobs already set; switches are the rest (architecture choices with no knob).
_KNOB_FIELDS = (
    "family",
    "preset",
    "num_encoder_layers",
    "num_decoder_layers",
    "d_model",
    "d_ff",
    "num_heads",
    "d_kv",
    "vocab_size",
    "shared_heads",
    "tied_kv",
)


def parse_switches(text: str) -> dict[str, object]:
    """``"norm_position=pre,linear_bias=false,norm_eps=1e-6"`` → typed Shape field overrides.

    This is how a config varies an architecture switch that has no knob (Cramming's Table 5 ablations turn the
    crammed BERT's switches back one at a time). Sizes stay in the name, where they round-trip.
    """
    fields = {f.name: f for f in dataclasses.fields(Shape)}
    switches: dict[str, object] = {}
    for item in (t.strip() for t in (text or "").split(",")):
        if not item:
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise ShapeError(f"switch {item!r}: write FIELD=VALUE, e.g. norm_position=pre")
        if key in _KNOB_FIELDS:
            raise ShapeError(f"switch {key!r} is set by the shape name (NL/EL/DL/DM/FF/NH/KV/SH/SKV), not a switch")
        if key not in fields:
            switchable = sorted(set(fields) - set(_KNOB_FIELDS))
            raise ShapeError(f"switch {key!r}: not a Shape field; switches are {switchable}")
        kind = fields[key].type
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false"):
                    raise ValueError("use true or false")
                switches[key] = value.lower() == "true"
            elif kind == "int":
                switches[key] = int(value)
            elif kind == "float":
                switches[key] = float(value)
            else:  # a Literal: validate() names the accepted values
                switches[key] = value
        except ValueError as e:
            raise ShapeError(f"switch {key}={value!r}: {e}") from None
    return switches


def get(name_or_shape: str | Shape, **overrides) -> Shape:
    if isinstance(name_or_shape, Shape):
        return dataclasses.replace(name_or_shape, **overrides) if overrides else name_or_shape
    return parse(name_or_shape, **overrides)
