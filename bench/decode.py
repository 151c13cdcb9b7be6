"""Our cached greedy and beam search against transformers' `generate` (with its cache), in one process.

    python bench/decode.py [--shapes small] [--beams 1 4] [--batch 8] [--inputs-length 128] [--max-length 32]
        [--rounds 5] [--json]

Same work on both sides: our T5 of the shape with random weights (`models.build`, float32) and transformers'
`T5ForConditionalGeneration` of the same shape (`hf.hf_config`) holding the same weights (`hf.hf_tensors`), the
same random encoder inputs, `max_new_tokens` = `--max-length`, the same beam count, `length_penalty` 1.0 and
transformers' default `early_stopping` (False) on both. Ours is `decode.greedy` (beam 1) or `decode.beam_search`
— one jitted while-loop with a key/value cache; the peer is `generate(use_cache=True)` under `torch.no_grad()` on
every core (`torch.set_num_threads(os.cpu_count())`).

Measurement: after one untimed call of each (our compile), `--rounds` rounds alternate one timed call of ours
then one of the peer, after a short pause that lets the other runtime's spinning threads go idle. Tokens per
call are batch × the decoding steps each side ran (to the last EOS, or `--max-length`: a search stops once
every sequence has finished), so a side that stops earlier is not credited with steps it skipped. (Random
weights with tied embeddings mostly echo the start id; the work per step does not depend on the ids.) A row reports each
side's median seconds per call and the tokens/s it gives, the median of the per-round ratios ours/peer
(`ratio`) with `ratio_min` / `ratio_max`, and `same_output`, the fraction of inputs both sides decoded alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import torch
import transformers
from common import emit
from flax import nnx

from scaling import models, shapes
from scaling.convert import hf
from scaling.data.vocab import EOS_ID
from scaling.downstream import decode

COLUMNS = (
    "shape",
    "beam",
    "batch",
    "inputs_length",
    "max_length",
    "ours_tokens_per_second",
    "peer_tokens_per_second",
    "ratio",
    "ratio_min",
    "ratio_max",
    "ours_seconds",
    "peer_seconds",
    "same_output",
)
PAUSE_SECONDS = 0.2
Search = Callable[[], np.ndarray]  # one whole decode of the batch: generated ids [B, steps], EOS then pad 0


def ours(model: models.T5, tokens: np.ndarray, max_length: int, beam: int) -> Search:
    if beam == 1:
        return lambda: np.asarray(decode.greedy(model, tokens, max_length))
    return lambda: np.asarray(
        decode.beam_search(model, tokens, max_length, beam, length_penalty=1.0, early_stopping=False)[0]
    )


def peer_model(model: models.T5) -> transformers.T5ForConditionalGeneration:
    """transformers' T5 of our model's shape holding our model's weights."""
    peer = transformers.T5ForConditionalGeneration(transformers.T5Config(**hf.hf_config(model.shape), use_cache=True))
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in hf.hf_tensors(model).items()}
    _, unexpected = peer.load_state_dict(tensors, strict=False)  # the tied copies of shared.weight are absent
    if unexpected:
        raise ValueError(f"transformers' T5 has no {unexpected}")
    return peer.eval()


def peer(model: transformers.T5ForConditionalGeneration, tokens: np.ndarray, max_length: int, beam: int) -> Search:
    inputs = torch.from_numpy(tokens.astype(np.int64))

    def search() -> np.ndarray:
        with torch.no_grad():
            out = model.generate(
                input_ids=inputs,
                attention_mask=inputs != 0,
                max_new_tokens=max_length,
                num_beams=beam,
                do_sample=False,
                length_penalty=1.0,
                early_stopping=False,
                decoder_start_token_id=0,
                use_cache=True,
            ).numpy()[:, 1:]  # drop the start id
        after_eos = np.cumsum(np.cumsum(out == 1, axis=1), axis=1) > 1  # beam search pads with EOS, greedy with 0
        return np.where(after_eos, 0, out)

    return search


def timed(search: Search) -> tuple[float, np.ndarray]:
    time.sleep(PAUSE_SECONDS)
    start = time.perf_counter()
    out = search()
    return time.perf_counter() - start, out


def steps(ids: np.ndarray, max_length: int) -> int:
    """Decoding steps a search ran: to the last row's EOS, or `max_length` if some row has none (as transformers
    crops its output)."""
    ends = [int(np.argmax(row == EOS_ID)) + 1 if (row == EOS_ID).any() else max_length for row in ids]
    return max(ends)


def compare(
    shape: str, *, beam: int, batch: int = 8, inputs: int = 128, max_length: int = 32, rounds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """One row: both sides warmed up, then `rounds` alternating timed calls."""
    if rounds < 1 or beam < 1:
        raise ValueError(f"rounds = {rounds} and beam = {beam} must both be >= 1")
    torch.set_num_threads(os.cpu_count())
    model = models.build(shapes.parse(shape), rngs=nnx.Rngs(seed))
    tokens = np.random.default_rng(seed).integers(2, model.shape.vocab_size, (batch, inputs)).astype(np.int32)
    ours_search = ours(model, tokens, max_length, beam)
    peer_search = peer(peer_model(model), tokens, max_length, beam)
    ours_out, peer_out = ours_search(), peer_search()
    ours_steps, peer_steps = steps(ours_out, max_length), steps(peer_out, max_length)
    peer_out = np.pad(peer_out, ((0, 0), (0, max_length - peer_out.shape[1])))
    same = float(np.mean([np.array_equal(a, b) for a, b in zip(ours_out, peer_out)]))
    times = [(timed(ours_search)[0], timed(peer_search)[0]) for _ in range(rounds)]
    ours_time, peer_time = (statistics.median(t[i] for t in times) for i in (0, 1))
    ratios = [(batch * ours_steps / o) / (batch * peer_steps / p) for o, p in times]
    return {
        "shape": model.shape.name,
        "beam": beam,
        "batch": batch,
        "inputs_length": inputs,
        "max_length": max_length,
        "ours_tokens_per_second": batch * ours_steps / ours_time,
        "peer_tokens_per_second": batch * peer_steps / peer_time,
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ours_seconds": ours_time,
        "peer_seconds": peer_time,
        "ours_steps": ours_steps,
        "peer_steps": peer_steps,
        "same_output": same,
        "rounds": rounds,
        "peer": f"transformers {transformers.__version__} / torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, use_cache=True",
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["small"], help="T5 shape names")
    parser.add_argument("--beams", nargs="+", type=int, default=[1, 4], help="1 is greedy search")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs-length", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=32, help="new tokens (max_new_tokens)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [
        compare(
            shape,
            beam=beam,
            batch=args.batch,
            inputs=args.inputs_length,
            max_length=args.max_length,
            rounds=args.rounds,
        )
        for shape in args.shapes
        for beam in args.beams
    ]
    emit(rows, COLUMNS, args.json)
    return rows


if __name__ == "__main__":
    main()
