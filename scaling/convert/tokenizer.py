"""A Hugging Face checkpoint's tokenizer as a sentencepiece model: `spiece.model` as it is, or `tokenizer.json`
(a Unigram model, what `T5TokenizerFast` saves) rebuilt into a sentencepiece model proto.

T5's `tokenizer.json` lists the sentencepiece pieces (pad 0, EOS 1, unk 2, ...) followed by the 100 sentinels
`<extra_id_99>` … `<extra_id_0>`; the sentinels are dropped, because our vocabularies add them back
(`seqio.SentencePieceVocabulary(extra_ids=100)` counts them down from the end, as T5 does). Normalisation
carries over: the `Precompiled` character map is sentencepiece's own, `Metaspace` with a prepended `▁` is
`add_dummy_prefix`, and collapsing runs of spaces (`WhitespaceSplit`, or `Replace(" {2,}", " ")`) is
`remove_extra_whitespaces`.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from scaling.convert.params import ConversionError

SPIECE_FILES = ("spiece.model", "sentencepiece.model")
TOKENIZER_JSON = "tokenizer.json"
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


__all__ = ["find_vocabulary", "sentencepiece_from_tokenizer_json"]
