"""Translation evaluation: decode a translation task's split and score it with sacreBLEU; BLEU during training.

    python -m scaling.translate --checkpoint=DIR [--task=wmt14_en_fr] [--split=validation] [--beam=4]

BLEU is sacreBLEU's corpus BLEU (Post 2018), the field's standard: detokenized hypotheses against the task's raw
references, its own 13a tokenization, case-sensitive; every result carries sacreBLEU's signature
(`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`) so that numbers are comparable. Li et al. report
tokenized BLEU with compound splitting (Vaswani et al.'s script), which runs about a point higher than sacreBLEU
on WMT14 En→Fr: compare a figure with theirs only through its trend.

Inputs are the task's own (T5 prefix + source, tokenized, cut to `inputs_length` with EOS kept); hypotheses are
the model's vocabulary's detokenization of the decoded ids up to EOS. Decoding is
:mod:`scaling.downstream.decode`'s beam search (`beam` 1 is its greedy search), in batches of one fixed shape
so that it compiles once.

:func:`translation_job` is the trainer's pretraining job on a translation task whose evaluation also decodes the
first `examples` validation pairs greedily and logs `eval_bleu` — the curves of Li et al.'s Figure 5 (BLEU on
newstest2013 against steps and wall-clock seconds) — through the one loop, metrics writer and checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from scaling.data import tasks, translation
from scaling.data.vocab import EOS_ID, PAD_ID
from scaling.downstream import decode
from scaling.errors import UserError
from scaling.training import trainer

TOKENIZERS = ("13a", "intl", "none", "char")  # sacreBLEU's language-independent tokenizers


@dataclasses.dataclass(frozen=True)
class Bleu:
    """sacreBLEU's corpus BLEU (0-100) with its signature and the statistics it is made of."""

    score: float
    signature: str
    precisions: tuple[float, ...]
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> Bleu:
    """Corpus BLEU of `hypotheses` against one reference each, with sacreBLEU's defaults but the tokenizer."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if tokenize not in TOKENIZERS:
        raise UserError(f"tokenize = {tokenize!r}: use one of {TOKENIZERS} (13a is sacreBLEU's and WMT's default)")
    metric = sacrebleu.BLEU(tokenize=tokenize)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return Bleu(
        score=float(result.score),
        signature=str(metric.get_signature()),
        precisions=tuple(float(p) for p in result.precisions),
        brevity_penalty=float(result.bp),
        hypothesis_length=int(result.sys_len),
        reference_length=int(result.ref_len),
    )


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split's evaluation pairs: source texts, the model's input ids (EOS-terminated), raw references."""

    sources: list[str]
    inputs: list[list[int]]
    references: list[str]
    truncated: int  # inputs cut to inputs_length

    def __len__(self) -> int:
        return len(self.sources)


def read_examples(task: str, split: str, vocabulary, inputs_length: int, max_examples: int | None = None) -> Examples:
    """The first `max_examples` pairs (all when None) of a translation task's split, in source order."""
    if inputs_length < 2:
        raise UserError(f"inputs_length = {inputs_length}: use at least 2 (one token and EOS)")
    ds = translation.texts(task, split)
    if max_examples is not None:
        ds = ds.take(max_examples)
    sources, inputs, references, truncated = [], [], [], 0
    for example in ds.as_numpy_iterator():
        ids = vocabulary.encode(example["inputs"].decode("utf-8"))
        truncated += len(ids) > inputs_length - 1
        inputs.append([*ids[: inputs_length - 1], EOS_ID])
        sources.append(example["source"].decode("utf-8"))
        references.append(example["targets"].decode("utf-8"))
    if not sources:
        raise UserError(f"Task {task!r} split {split!r} has no examples to translate")
    return Examples(sources, inputs, references, truncated)


def _text(ids: np.ndarray, vocabulary) -> tuple[str, bool]:
    """The detokenized ids up to EOS, and whether EOS was reached."""
    ids = [int(i) for i in ids]
    finished = EOS_ID in ids
    ids = ids[: ids.index(EOS_ID)] if finished else ids
    return vocabulary.decode([i for i in ids if i != PAD_ID]), finished


def translate(
    model, vocabulary, inputs: Sequence[Sequence[int]], *, beam: int, max_length: int, batch_size: int
) -> tuple[list[str], int]:
    """(hypotheses, how many stopped at `max_length` without EOS) for EOS-terminated input ids.

    Every batch has the same shape [batch_size, longest input] (the last one padded with copies of its last row),
    so the search compiles once."""
    if beam < 1 or max_length < 1 or batch_size < 1:
        raise UserError(f"beam={beam} max_length={max_length} batch_size={batch_size}: use 1 or more for each")
    width = max(map(len, inputs))
    hypotheses, unfinished = [], 0
    for start in range(0, len(inputs), batch_size):
        rows = list(inputs[start : start + batch_size])
        count = len(rows)
        rows += [rows[-1]] * (batch_size - count)
        tokens = np.zeros((batch_size, width), np.int32)
        for row, ids in zip(tokens, rows):
            row[: len(ids)] = ids
        if beam == 1:
            out = decode.greedy(model, tokens, max_length)
        else:
            out = decode.beam_search(model, tokens, max_length, beam)[0]
        for ids in np.asarray(out)[:count]:
            text, finished = _text(ids, vocabulary)
            hypotheses.append(text)
            unfinished += not finished
    return hypotheses, unfinished


def evaluate(
    model,
    vocabulary,
    task: str,
    split: str = "validation",
    *,
    beam: int = 4,
    max_length: int = 128,
    inputs_length: int = 128,
    batch_size: int = 32,
    max_examples: int | None = None,
    tokenize: str = "13a",
) -> dict[str, Any]:
    """Translates a task's split and scores it: BLEU, signature, settings and every (source, reference, hypothesis)."""
    examples = read_examples(task, split, vocabulary, inputs_length, max_examples)
    start = time.perf_counter()
    hypotheses, unfinished = translate(
        model, vocabulary, examples.inputs, beam=beam, max_length=max_length, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    score = bleu(hypotheses, examples.references, tokenize)
    return {
        "task": task,
        "split": split,
        "bleu": score.score,
        "signature": score.signature,
        "statistics": score.as_dict(),
        "examples": len(examples),
        "decoding": {
            "beam": beam,
            "max_length": max_length,
            "inputs_length": inputs_length,
            "batch_size": batch_size,
            "truncated_inputs": examples.truncated,
            "unfinished_hypotheses": unfinished,
            "seconds": seconds,
        },
        "translations": [
            {"source": s, "reference": r, "hypothesis": h}
            for s, r, h in zip(examples.sources, examples.references, hypotheses)
        ],
    }


def write(result: dict[str, Any], path: str | Path, **fields: Any) -> Path:
    """Writes the evaluation (with `fields`, e.g. the checkpoint) as JSON, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**fields, **result}, indent=2, ensure_ascii=False) + "\n")
    return path


def summary_line(result: dict[str, Any], path: Path) -> str:
    decoding = result["decoding"]
    search = "greedy" if decoding["beam"] == 1 else f"beam {decoding['beam']}"
    return (
        f"BLEU {result['bleu']:.2f} ({result['signature']}) on {result['examples']} examples of {result['task']} "
        f"{result['split']}, {search}, {decoding['seconds']:.0f} s; {decoding['truncated_inputs']} inputs cut, "
        f"{decoding['unfinished_hypotheses']} hypotheses without EOS; written to {path}"
    )


def translation_job(
    run: trainer.Run, *, examples: int = 64, max_length: int | None = None, batch_size: int = 32, tokenize: str = "13a"
) -> trainer.Job:
    """The pretraining job of `run` (a translation task) whose evaluation adds `eval_bleu`: greedy BLEU on the
    first `examples` pairs of the config's eval split (0: none). `max_length` defaults to the targets length."""
    config = run.config
    translation.translation_spec(config.data.task)  # a UserError for a task that does not translate
    job = trainer.pretraining_job(run)
    if not examples:
        return job
    max_length = max_length or config.data.targets_length
    vocabulary = tasks.vocabulary(config.data.task)
    cache: dict[str, Examples] = {}

    def evaluate(params) -> dict[str, float]:
        metrics = job.evaluate(params)
        if "examples" not in cache:
            cache["examples"] = read_examples(
                config.data.task, config.data.eval_split, vocabulary, config.data.inputs_length, examples
            )
        data = cache["examples"]
        model = nnx.merge(run.graphdef, params)
        hypotheses, _ = translate(
            model, vocabulary, data.inputs, beam=1, max_length=max_length, batch_size=min(batch_size, len(data))
        )
        return {**metrics, "eval_bleu": bleu(hypotheses, data.references, tokenize).score}

    signature = bleu(["a"], ["a"], tokenize).signature
    summary = {"bleu": {"examples": examples, "search": "greedy", "max_length": max_length, "signature": signature}}
    return dataclasses.replace(job, evaluate=evaluate, summary={**job.summary, **summary})


def default_config() -> ml_collections.ConfigDict:
    """The `config.translation` block `python -m scaling.translate --config=…` reads besides the trainer's fields."""
    return ml_collections.ConfigDict(
        {
            "bleu_examples": 64,  # validation pairs decoded greedily at every evaluation for eval_bleu (0: none)
            "beam": 4,  # the final evaluation's beam (1: greedy)
            "eval_examples": ml_collections.config_dict.placeholder(int),  # final evaluation's pairs (None: all)
            "max_length": ml_collections.config_dict.placeholder(int),  # decoded tokens (None: data.targets_length)
            "batch_size": 32,  # rows decoded together
            "tokenize": "13a",  # sacreBLEU's tokenizer
        }
    )
