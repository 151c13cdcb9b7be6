"""Trains the shipped sentencepiece model on the sotu train split (never on validation speeches).

Reproduce the shipped asset (single-threaded, so the result is deterministic; about a minute on 2 cores):

    python -m scaling.data.build_vocab --output=scaling/data/assets/sotu_sp8000.model --vocab_size=8000

Ids follow T5 (pad 0, EOS 1, unk 2, no BOS); seqio adds the 100 extra ids on top of `--vocab_size`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from scaling import cli
from scaling.data import corpora, vocab


def train_sentencepiece(output: Path, vocab_size: int, documents: list[str]) -> Path:
    """Trains a unigram model on `documents` (one per line) and writes `output`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text("\n".join(documents) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(Path(tmp) / "spm"),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=0.9995,
            pad_id=vocab.PAD_ID,
            eos_id=vocab.EOS_ID,
            unk_id=vocab.UNK_ID,
            bos_id=-1,
            max_sentence_length=1 << 16,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
        model = sentencepiece_model_pb2.ModelProto.FromString((Path(tmp) / "spm.model").read_bytes())
    # The trainer records its temporary paths; replace them so that rebuilding gives identical bytes.
    model.trainer_spec.input[:] = ["sotu train split"]
    model.trainer_spec.model_prefix = ""
    output.write_bytes(model.SerializeToString())
    return output


def _build_vocab(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.data.build_vocab", __doc__)
    parser.add_argument(
        "--output",
        type=Path,
        default=vocab.DEFAULT_SPM_PATH,
        help="the sentencepiece model to write (default: the shipped asset)",
    )
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=vocab.DEFAULT_SPM_PIECES,
        help="pieces, before seqio's 100 extra ids (default %(default)s)",
    )
    args = parser.parse_args(argv)
    report = corpora.ReadReport()
    documents = list(corpora.read_documents(corpora.sotu_files("train"), report))
    path = train_sentencepiece(args.output, args.vocab_size, documents)
    print(f"wrote {path} ({path.stat().st_size} bytes) from {report.documents} paragraphs of {report.files} speeches")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_build_vocab, argv)


if __name__ == "__main__":
    sys.exit(main())
