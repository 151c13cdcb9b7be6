"""A Hugging Face checkpoint's tokenizer as a sentencepiece model: `spiece.model` as it is, or `tokenizer.json`
(a Unigram model, what `T5TokenizerFast` saves) rebuilt into a sentencepiece model proto.

T5's `tokenizer.json` lists the sentencepiece pieces (pad 0, EOS 1, unk 2, ...) followed by the 100 sentinels
`<extra_id_99>` … `<extra_id_0>`; the sentinels are dropped, because our vocabularies add them back
(`seqio.SentencePieceVocabulary(extra_ids=100)` counts them down from the end, as T5 does). Normalisation
carries over: the `Precompiled` character map is sentencepiece's own, `Metaspace` with a prepended `▁` is
`add_dummy_prefix`, and collapsing runs of spaces (`WhitespaceSplit`, or `Replace(" {2,}", " ")`) is
`remove_extra_whitespaces`.

Exports go the other way (`hf_tokenizer_files`): `spiece.model` as stored, and, written without transformers,
the `tokenizer.json` transformers' `T5Tokenizer` builds from it (pieces, then the sentinels; pad, EOS and unk
special), `tokenizer_config.json` and `special_tokens_map.json`, so that `AutoTokenizer.from_pretrained` loads
the directory offline and tokenizes as our seqio vocabulary does.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

from scaling.convert.params import ConversionError

log = logging.getLogger(__name__)

SPIECE_FILES = ("spiece.model", "sentencepiece.model")
TOKENIZER_JSON = "tokenizer.json"
# What export-hf writes beside the model (tokenizer.json only for what a Unigram `tokenizers` model can express).
HF_TOKENIZER_FILES = ("spiece.model", TOKENIZER_JSON, "tokenizer_config.json", "special_tokens_map.json")
_SENTINEL = re.compile(r"<extra_id_(\d+)>")
_BYTE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def find_vocabulary(directory: str | Path) -> tuple[bytes | None, str | None]:
    """(serialized sentencepiece model, the file it came from) for a Hugging Face directory; (None, None)
    when it ships no tokenizer. Raises ConversionError for a tokenizer.json that cannot become one."""
    directory = Path(directory)
    for name in SPIECE_FILES:
        if (directory / name).is_file():
            return (directory / name).read_bytes(), name
    if (directory / TOKENIZER_JSON).is_file():
        return sentencepiece_from_tokenizer_json(directory / TOKENIZER_JSON), TOKENIZER_JSON
    return None, None


def _walk(spec: Any, key: str) -> list[dict[str, Any]]:
    """The components of a (possibly nested `Sequence`) normalizer or pre-tokenizer spec, in order."""
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [part for item in spec.get(key, []) for part in _walk(item, key)]
    return [spec]


def sentencepiece_from_tokenizer_json(path: str | Path) -> bytes:
    """A serialized sentencepiece ModelProto that tokenizes as the Unigram `tokenizer.json` at `path` does."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path} could not be read ({type(e).__name__}: {e})") from None
    model = spec.get("model") or {}
    if model.get("type") != "Unigram":
        raise ConversionError(
            f"{path}: a {model.get('type')!r} tokenizer; only Unigram (sentencepiece) tokenizers "
            f"convert to a sentencepiece model. Pass the model's spiece.model as the vocabulary"
        )
    pieces = [(str(p), float(s)) for p, s in model["vocab"]]
    sentinels = 0
    while pieces and (m := _SENTINEL.fullmatch(pieces[-1][0])) and int(m.group(1)) == sentinels:
        pieces.pop()
        sentinels += 1
    special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    unk_id = model.get("unk_id")
    byte_fallback = bool(model.get("byte_fallback"))
    index = {piece: i for i, (piece, _) in enumerate(pieces)}

    proto = pb.ModelProto()
    for i, (piece, score) in enumerate(pieces):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if i == unk_id:
            entry.type = pb.ModelProto.SentencePiece.UNKNOWN
        elif piece in special:
            entry.type = pb.ModelProto.SentencePiece.CONTROL
        elif byte_fallback and _BYTE.fullmatch(piece):
            entry.type = pb.ModelProto.SentencePiece.BYTE
        else:
            entry.type = pb.ModelProto.SentencePiece.NORMAL
    if unk_id is None or not 0 <= unk_id < len(pieces):
        raise ConversionError(f"{path}: the Unigram model has no unk piece (unk_id {unk_id}); sentencepiece needs one")

    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = byte_fallback
    trainer.unk_id = unk_id
    trainer.unk_piece = pieces[unk_id][0]
    for field, candidates in (("pad", ("<pad>",)), ("eos", ("</s>",)), ("bos", ("<s>",))):
        found = next((c for c in candidates if c in index and c in special), None)
        setattr(trainer, f"{field}_id", index[found] if found else -1)
        if found:
            setattr(trainer, f"{field}_piece", found)

    normalizer = proto.normalizer_spec
    normalizer.escape_whitespaces = True
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.name = "identity"
    for part in _walk(spec.get("normalizer"), "normalizers"):
        kind = part.get("type")
        if kind == "Precompiled":
            normalizer.name = "nmt_nfkc"
            normalizer.precompiled_charsmap = base64.b64decode(part.get("precompiled_charsmap") or "")
        elif kind == "Strip" or (
            kind == "Replace" and (part.get("pattern") or {}).get("Regex") == " {2,}" and part.get("content") == " "
        ):
            normalizer.remove_extra_whitespaces = True
        elif kind == "Prepend" and part.get("prepend") == "▁":
            normalizer.add_dummy_prefix = True
        elif kind == "Replace" and (part.get("pattern") or {}).get("String") == " " and part.get("content") == "▁":
            pass  # the Metaspace escape, done by escape_whitespaces
        else:
            raise ConversionError(
                f"{path}: normalizer {kind!r} has no sentencepiece equivalent here; pass the "
                f"model's spiece.model as the vocabulary"
            )
    for part in _walk(spec.get("pre_tokenizer"), "pretokenizers"):
        kind = part.get("type")
        if kind == "Metaspace":
            if part.get("replacement", "▁") != "▁":
                raise ConversionError(f"{path}: Metaspace replacement {part.get('replacement')!r}, expected '▁'")
            scheme = part.get("prepend_scheme", "always" if part.get("add_prefix_space", True) else "never")
            normalizer.add_dummy_prefix = normalizer.add_dummy_prefix or scheme in ("always", "first")
        elif kind == "WhitespaceSplit":
            normalizer.remove_extra_whitespaces = True
        else:
            raise ConversionError(
                f"{path}: pre-tokenizer {kind!r} has no sentencepiece equivalent here; pass the "
                f"model's spiece.model as the vocabulary"
            )
    proto.denormalizer_spec.name = "identity"
    return proto.SerializeToString()


# ------------------------------------------------------------------------------------------------ export

_METASPACE = "▁"


def _added(index: int, content: str, special: bool = True) -> dict[str, Any]:
    return {
        "id": index,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": not special,
        "special": special,
    }


def tokenizer_json_from_sentencepiece(model: bytes, extra_ids: int = 100) -> dict[str, Any]:
    """The `tokenizer.json` (as a dict) of transformers' T5 tokenizer for a serialized sentencepiece Unigram model:
    its pieces then `<extra_id_{extra_ids-1}>` … `<extra_id_0>`, EOS appended to every sequence. Raises
    ConversionError for what a Unigram `tokenizers` model cannot express (BPE, byte fallback)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto.FromString(model)
    kind = pb.ModelProto.SentencePiece
    if proto.trainer_spec.model_type != pb.TrainerSpec.UNIGRAM:
        raise ConversionError("the vocabulary is not a sentencepiece Unigram model")
    if proto.trainer_spec.byte_fallback:
        raise ConversionError("the vocabulary uses byte fallback, which transformers' T5 tokenizer does not")
    norm = proto.normalizer_spec
    if not norm.escape_whitespaces:
        raise ConversionError("the vocabulary does not escape whitespace as ▁")
    pieces = [(p.piece, p.score) for p in proto.pieces]
    unk = next((i for i, p in enumerate(proto.pieces) if p.type == kind.UNKNOWN), None)
    eos = proto.trainer_spec.eos_id
    if unk is None or not 0 <= eos < len(pieces):
        raise ConversionError("the vocabulary has no unk or no EOS piece")
    added = [
        _added(i, p.piece, p.type != kind.USER_DEFINED)
        for i, p in enumerate(proto.pieces)
        if p.type in (kind.CONTROL, kind.UNKNOWN, kind.USER_DEFINED)
    ]
    for n in range(extra_ids - 1, -1, -1):
        added.append(_added(len(pieces), f"<extra_id_{n}>"))
        pieces.append((f"<extra_id_{n}>", 0.0))
    scheme = "always" if norm.add_dummy_prefix else "never"
    metaspace = {"type": "Metaspace", "replacement": _METASPACE, "prepend_scheme": scheme, "split": True}
    pre = [{"type": "WhitespaceSplit"}] if norm.remove_extra_whitespaces else []
    eos_piece = proto.pieces[eos].piece
    end = {"SpecialToken": {"id": eos_piece, "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": (
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(norm.precompiled_charsmap).decode()}
            if norm.precompiled_charsmap
            else None
        ),
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [*pre, metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, end],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, end, {"Sequence": {"id": "B", "type_id": 0}}, end],
            "special_tokens": {eos_piece: {"id": eos_piece, "ids": [eos], "tokens": [eos_piece]}},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": unk, "vocab": [[p, s] for p, s in pieces], "byte_fallback": False},
    }


def hf_tokenizer_files(model: bytes, extra_ids: int = 100) -> dict[str, bytes]:
    """File name → contents of a Hugging Face T5 tokenizer for a serialized sentencepiece model: `spiece.model`,
    `tokenizer.json` (left out, with a warning, when the model cannot be one; transformers then builds it from
    `spiece.model`), `tokenizer_config.json` and `special_tokens_map.json`."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto.FromString(model)
    names = {i: p.piece for i, p in enumerate(proto.pieces)}
    spec = proto.trainer_spec
    special = {"eos_token": names.get(spec.eos_id), "unk_token": names.get(spec.unk_id)}
    special |= {"pad_token": names.get(spec.pad_id)}
    special = {k: v for k, v in special.items() if v is not None}
    sentinels = [f"<extra_id_{n}>" for n in range(extra_ids)]
    as_json = lambda value: (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
    files = {HF_TOKENIZER_FILES[0]: model}
    try:
        files[TOKENIZER_JSON] = as_json(tokenizer_json_from_sentencepiece(model, extra_ids))
    except ConversionError as e:
        log.warning("writing spiece.model without tokenizer.json: %s", e)
    files["tokenizer_config.json"] = as_json(
        {
            "tokenizer_class": "T5Tokenizer",
            **special,
            "extra_ids": extra_ids,
            "additional_special_tokens": sentinels,
        }
    )
    files["special_tokens_map.json"] = as_json({**special, "additional_special_tokens": sentinels})
    return files


__all__ = [
    "HF_TOKENIZER_FILES",
    "find_vocabulary",
    "hf_tokenizer_files",
    "sentencepiece_from_tokenizer_json",
    "tokenizer_json_from_sentencepiece",
]
