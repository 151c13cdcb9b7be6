"""`python -m scaling.convert import-hf SRC DST | import-mesh-tf SRC DST | export-hf SRC DST`.

BERT family: import-hf also reads a Hugging Face BertForMaskedLM / RobertaForMaskedLM /
RobertaPreLayerNormForMaskedLM directory (by config.json's model_type), and export-hf of a BERT-family artifact
writes one (config.json and model.safetensors, no tokenizer). Cramming's released crammed-bert (config.json with
cramming's `arch` dict, model_type crammedBERT), or a checkpoint cramming saved (model_config.json), imports as
our crammed BERT (scaling.convert.cramming).

import-*: SRC is a Hugging Face T5 directory or a Mesh TF checkpoint (directory or `model.ckpt-N` prefix, with
`operative_config.gin` beside it); DST becomes a model artifact (with the source's vocabulary: `spiece.model`, or
`tokenizer.json` converted) that `--config.init_from=DST`, `python -m scaling.decode` and finetuning read.
export-hf: SRC is any model directory (artifact or training workdir, its newest checkpoint); DST becomes a
directory `transformers.T5ForConditionalGeneration.from_pretrained` loads and `generate` decodes with
(generation_config.json), with the tokenizer `AutoTokenizer.from_pretrained` loads (spiece.model,
tokenizer.json, tokenizer_config.json, special_tokens_map.json) when the model has a vocabulary.
SRC of import-hf may be a hub cache entry as `huggingface-cli download` leaves it (`models--org--name`, read at
the snapshot `refs/main` names) or one of its `snapshots/<hash>` directories.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scaling import cli
from scaling.convert import cramming, hf, mesh_tf
from scaling.convert.params import ConversionError
from scaling.training import artifact

log = logging.getLogger(__name__)


def hf_source(path: str | os.PathLike) -> Path:
    """The directory holding a Hugging Face checkpoint's files: `path` itself, or, for a hub cache entry
    (`models--org--name`), the snapshot `refs/main` names (or its only snapshot)."""
    path = Path(path)
    if (path / "config.json").is_file() or not (path / "snapshots").is_dir():
        return path
    ref = path / "refs" / "main"
    if ref.is_file():
        snapshot = path / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
        raise ConversionError(f"{ref} names snapshot {snapshot.name}, which is not in {path / 'snapshots'}")
    snapshots = sorted(p for p in (path / "snapshots").iterdir() if p.is_dir())
    if len(snapshots) == 1:
        return snapshots[0]
    if not snapshots:
        raise ConversionError(f"{path} is a Hugging Face cache entry without snapshots; download the model again")
    raise ConversionError(
        f"{path} is a Hugging Face cache entry with {len(snapshots)} snapshots and no refs/main; "
        f"pass one of {[str(p) for p in snapshots]}"
    )


def _vocabulary_for(
    shape, found: bytes | None, origin: str, override: str | os.PathLike | None, where: Path
) -> tuple[bytes | None, str | None]:
    """(the sentencepiece model to store, where it came from): `override` if given (refused when it does not
    fit), else the source's own when it fits the model; a source vocabulary that does not fit is dropped with a
    warning, so that decode asks for one instead of using it."""
    import tempfile

    if override is not None:
        vocabulary = artifact.as_vocabulary(override)
        artifact.check_vocabulary(vocabulary, shape, f"--vocabulary for {where}")
        return Path(override).read_bytes(), str(Path(override).absolute())
    if found is None:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "spiece.model").write_bytes(found)
        try:
            artifact.check_vocabulary(artifact.as_vocabulary(Path(tmp) / "spiece.model"), shape, str(where / origin))
        except artifact.VocabularyMismatchError as e:
            log.warning("not keeping the vocabulary: %s", e)
            return None, None
    return found, origin


def import_hf(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    vocabulary: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts a Hugging Face T5 directory (or hub cache entry) into a model artifact at `dst`, keeping its
    `spiece.model` (or its `tokenizer.json`, converted); `vocabulary` replaces the source's. BERT / RoBERTa
    (by config.json's model_type) and cramming checkpoints (by their config's keys) import as BERT shapes.
    Returns `dst`."""
    from flax import nnx

    source = hf_source(src).absolute()
    if cramming.is_cramming(source):
        return _import_cramming(source, dst, vocabulary=vocabulary, overwrite=overwrite)
    if hf.model_type(source) in hf.BERT_MODEL_TYPES:
        return _import_hf_bert(source, dst, vocabulary=vocabulary, overwrite=overwrite)
    model, shape = hf.load_t5(source)
    stored, origin = _source_vocabulary(shape, source, vocabulary)
    if stored is None:
        log.warning(
            "%s ships no usable tokenizer: the model has no vocabulary, so decoding it needs "
            "--vocabulary=PATH/spiece.model",
            source,
        )
    prov = artifact.provenance("import-hf", source, vocabulary=origin)
    return artifact.save(
        dst, shape=shape, params=nnx.state(model), vocabulary=stored, provenance=prov, overwrite=overwrite
    )


def _source_vocabulary(shape, source: Path, vocabulary) -> tuple[bytes | None, str | None]:
    """(the sentencepiece model to store, where it came from): `vocabulary` if given, else the source's
    `spiece.model` or Unigram `tokenizer.json` when it fits the model; one that does not is warned about."""
    from scaling.convert import tokenizer

    try:
        found, origin = tokenizer.find_vocabulary(source) if vocabulary is None else (None, None)
    except ConversionError as e:
        log.warning("not keeping the vocabulary: %s", e)
        found, origin = None, None
    return _vocabulary_for(shape, found, origin, vocabulary, source)


def _import_cramming(source: Path, dst: str | os.PathLike, *, vocabulary, overwrite: bool) -> Path:
    """A cramming crammedBERT checkpoint as an artifact of our crammed BERT, with its tokenizer when that is a
    sentencepiece-style Unigram model that fits (the released one is WordPiece, and is not kept)."""
    from flax import nnx

    model, shape = cramming.load(source)
    stored, origin = _source_vocabulary(shape, source, vocabulary)
    if stored is None:
        log.warning(
            "%s: the artifact has no vocabulary, so finetuning it needs --config.vocabulary=PATH: a sentencepiece "
            "model whose pieces and 100 extra ids fit the %d embedding rows, with pad 0, EOS 1 and unk 2; its "
            "ids mean what the model learned only if the model was trained with it",
            source,
            shape.vocab_size,
        )
    prov = artifact.provenance("import-hf", source, vocabulary=origin, architecture=cramming.MODEL_TYPE)
    return artifact.save(
        dst, shape=shape, params=nnx.state(model), vocabulary=stored, provenance=prov, overwrite=overwrite
    )


def _import_hf_bert(source: Path, dst: str | os.PathLike, *, vocabulary, overwrite: bool) -> Path:
    """A Hugging Face BERT / RoBERTa (post- or pre-norm) masked LM as an artifact; its WordPiece / BPE tokenizer
    is not kept (our vocabularies are sentencepiece models): `vocabulary` stores one that fits."""
    from flax import nnx

    model, shape = hf.load_bert(source)
    stored, origin = _vocabulary_for(shape, None, None, vocabulary, source)
    if stored is None:
        log.warning("%s: the BERT/RoBERTa tokenizer is not converted; the artifact has no vocabulary", source)
    prov = artifact.provenance("import-hf", source, vocabulary=origin)
    return artifact.save(
        dst, shape=shape, params=nnx.state(model), vocabulary=stored, provenance=prov, overwrite=overwrite
    )


def import_mesh_tf(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    gin: str | os.PathLike | None = None,
    *,
    vocabulary: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts a Mesh TF T5 checkpoint (directory or `model.ckpt-N` prefix) into a model artifact at `dst`.

    Mesh TF checkpoints name their vocabulary in gin (usually on GCS); a `spiece.model` or
    `sentencepiece.model` beside the checkpoint is kept, else pass `vocabulary`. Returns `dst`.
    """
    import re

    from flax import nnx

    from scaling.convert import tokenizer

    source = Path(src).absolute()
    model, shape = mesh_tf.load_t5(source, gin)
    directory = source if source.is_dir() else source.parent
    found, origin = None, None
    for name in tokenizer.SPIECE_FILES:
        if vocabulary is None and (directory / name).is_file():
            found, origin = (directory / name).read_bytes(), name
            break
    stored, origin = _vocabulary_for(shape, found, origin, vocabulary, directory)
    step = re.search(r"model\.ckpt-(\d+)", source.name)
    prov = artifact.provenance("import-mesh-tf", source, step=int(step.group(1)) if step else None, vocabulary=origin)
    return artifact.save(
        dst, shape=shape, params=nnx.state(model), vocabulary=stored, provenance=prov, overwrite=overwrite
    )


def export_hf(src: str | os.PathLike, dst: str | os.PathLike, *, vocabulary: str | os.PathLike | None = None) -> Path:
    """Writes the T5 in any model directory (artifact, training workdir, finetuned run) as a Hugging Face
    directory at `dst`: config.json, generation_config.json, model.safetensors and, when the model has a
    vocabulary, its tokenizer (spiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json),
    so that `AutoTokenizer` / `T5ForConditionalGeneration.from_pretrained(dst)` and `generate` work offline.
    Returns `dst`."""

    loaded = artifact.load(src, vocabulary=vocabulary)
    if loaded.shape.family == "bert" and not loaded.head:
        out = hf.export_bert(loaded.params, loaded.shape, dst)
        log.warning("%s: the tokenizer is not exported for BERT-family models", out)
        return out
    if loaded.shape.family != "t5":
        raise ConversionError(
            f"{loaded.path}: {loaded.shape.name} is a {loaded.shape.family}; only T5 exports to Hugging Face"
        )
    from scaling.convert import tokenizer

    out = hf.export(loaded.model(), dst)
    if loaded.vocabulary is None:
        log.warning(
            "%s has no vocabulary: %s holds no tokenizer; pass --vocabulary=PATH/spiece.model to export one",
            loaded.path,
            out,
        )
        return out
    for name, data in tokenizer.hf_tokenizer_files(artifact.vocabulary_bytes(loaded.vocabulary)).items():
        (out / name).write_bytes(data)
    return out


def _convert(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.convert", __doc__)
    parser.add_argument(
        "command",
        choices=("import-hf", "import-mesh-tf", "export-hf"),
        help="import-hf / import-mesh-tf: SRC → model artifact DST; export-hf: any model → HF DST",
    )
    parser.add_argument(
        "src",
        help="import-hf: a Hugging Face T5 / BERT / RoBERTa / cramming crammedBERT directory or hub cache entry; "
        "import-mesh-tf: a "
        "Mesh TF checkpoint; export-hf: any model directory (artifact or workdir)",
    )
    parser.add_argument("dst", help="a new directory")
    parser.add_argument("--gin", default=None, help="import-mesh-tf: operative_config.gin if not beside SRC")
    parser.add_argument(
        "--vocabulary",
        default=None,
        help="a sentencepiece model to store with (or export beside) the model instead of its own",
    )
    args = parser.parse_args(argv)
    if args.command == "export-hf":
        out = export_hf(args.src, args.dst, vocabulary=args.vocabulary)
    elif args.command == "import-hf":
        out = import_hf(args.src, args.dst, vocabulary=args.vocabulary)
    else:
        out = import_mesh_tf(args.src, args.dst, args.gin, vocabulary=args.vocabulary)
    print(f"{args.command}: {artifact.load_shape(args.src if args.command == 'export-hf' else out).name} → {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_convert, argv)


if __name__ == "__main__":
    sys.exit(main())
