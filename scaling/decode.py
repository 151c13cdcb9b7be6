"""`python -m scaling.decode --checkpoint=DIR --input "The <extra_id_0> walks in <extra_id_1> park"`

Fills in the sentinel spans of each `--input` with greedy (`--beam_size=1`) or beam search, printing each input
then one line per span. The library is :mod:`scaling.downstream.decode`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from scaling import cli
from scaling.errors import UserError


def spans(ids: np.ndarray, vocabulary) -> list[tuple[str, str]]:
    """(sentinel, text) pairs from a span-corruption target such as `<extra_id_0> a b <extra_id_1> c </s>`."""
    from scaling.data.vocab import EOS_ID, PAD_ID

    out: list[tuple[str, list[int]]] = []
    for token in ids.tolist():
        if token in (EOS_ID, PAD_ID):
            break
        index = vocabulary.vocab_size - 1 - token
        if 0 <= index < vocabulary.extra_ids:
            out.append((f"<extra_id_{index}>", []))
        elif out:
            out[-1][1].append(token)
        else:
            out.append(("", [token]))
    return [(sentinel, vocabulary.decode(piece)) for sentinel, piece in out]


def _decode(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.decode", __doc__)
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a T5 model directory: converted checkpoint (python -m scaling.convert), training "
        "workdir or finetuned run",
    )
    parser.add_argument(
        "--input", required=True, action="append", help="text with <extra_id_N> sentinels; repeat for several inputs"
    )
    parser.add_argument(
        "--vocabulary", default=None, help="sentencepiece model to use instead of the one stored with the model"
    )
    parser.add_argument("--max_length", type=int, default=32, help="decoded tokens per input (default %(default)s)")
    parser.add_argument("--beam_size", type=int, default=1, help="beams; 1 is greedy search (default %(default)s)")
    args = parser.parse_args(argv)
    if args.max_length < 1 or args.beam_size < 1:
        raise UserError(f"--max_length={args.max_length} --beam_size={args.beam_size}: use 1 or more for both")
    from scaling.data import vocab
    from scaling.downstream import decode

    model, vocabulary = decode.load_for_decoding(args.checkpoint, args.vocabulary)
    encoded = [vocabulary.encode(text) + [vocab.EOS_ID] for text in args.input]
    tokens = np.zeros((len(encoded), max(map(len, encoded))), np.int32)
    for row, ids in zip(tokens, encoded):
        row[: len(ids)] = ids
    if args.beam_size == 1:
        outputs = decode.greedy(model, tokens, args.max_length)
    else:
        outputs = decode.beam_search(model, tokens, args.max_length, args.beam_size)[0]
    for text, ids in zip(args.input, np.asarray(outputs)):
        print(text)
        for sentinel, piece in spans(ids, vocabulary):
            print(f"  {sentinel} {piece}".rstrip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_decode, argv)


if __name__ == "__main__":
    sys.exit(main())
