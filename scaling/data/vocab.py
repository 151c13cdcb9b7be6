"""Vocabularies: the shipped offline sentencepiece model and T5's, as seqio vocabularies with 100 sentinels.

Ids follow T5: pad 0, EOS 1, unk 2, then the sentencepiece pieces, then 100 extra ids counted down from the
end (`<extra_id_0>` = `vocab_size - 1`, seqio's `reverse_extra_ids=True`). Models size their embedding with
`vocabulary.vocab_size`, which includes the extra ids: 8100 for the shipped model (8000 pieces + 100).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # seqio (and TensorFlow) load only when a vocabulary is built: shapes imports these constants
    import seqio

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
NUM_EXTRA_IDS = 100

ASSETS = Path(__file__).parent / "assets"
DEFAULT_SPM_PATH = ASSETS / "sotu_sp8000.model"
# Model pieces (incl. pad/eos/unk) of the shipped model, and the size a model's embedding needs.
DEFAULT_SPM_PIECES = 8000
DEFAULT_VOCAB_SIZE = DEFAULT_SPM_PIECES + NUM_EXTRA_IDS
# T5's embedding: 32,000 pieces + 100 extra ids, padded to a multiple of 128 (the released checkpoints' size).
T5_VOCAB_SIZE = 32128
# The production vocabulary of T5 / Scale Efficiently (32k pieces + 100 extra ids), for configs on C4.
T5_SPM_PATH = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"


@functools.cache
def get_vocabulary(path: str | os.PathLike | None = None) -> seqio.SentencePieceVocabulary:
    """A seqio sentencepiece vocabulary with T5's 100 extra ids; None means the shipped offline model."""
    path = str(path or DEFAULT_SPM_PATH)
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(
            f"Sentencepiece model {path} not found. Use None for the shipped model, or rebuild it with "
            "`python -m scaling.data.build_vocab`."
        )
    import seqio

    return seqio.SentencePieceVocabulary(path, extra_ids=NUM_EXTRA_IDS, reverse_extra_ids=True)


def default_vocabulary() -> seqio.SentencePieceVocabulary:
    """The shipped 8000-piece model trained on the sotu train split; vocab_size is 8100."""
    return get_vocabulary(None)


def sentinel_id(vocabulary: seqio.Vocabulary, index: int = 0) -> int:
    """Id of `<extra_id_{index}>`: T5 counts sentinels down from the last id."""
    if not 0 <= index < vocabulary.extra_ids:
        raise ValueError(f"Sentinel {index} out of range: the vocabulary has {vocabulary.extra_ids} extra ids")
    return vocabulary.vocab_size - 1 - index


def mask_token_id(vocabulary: seqio.Vocabulary) -> int:
    """The MLM [MASK] token: `<extra_id_0>` (T5 vocabularies have no [MASK]; MLM never uses sentinels)."""
    return sentinel_id(vocabulary, 0)


def regular_token_range(vocabulary: seqio.Vocabulary) -> tuple[int, int]:
    """[low, high) of ordinary pieces: no pad/EOS/unk, no extra ids. MLM draws random replacements here."""
    return UNK_ID + 1, vocabulary.vocab_size - vocabulary.extra_ids
