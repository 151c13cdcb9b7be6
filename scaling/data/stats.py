"""Measured statistics of produced batches, to check them against the recipes (pure numpy)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from scaling.data import vocab


def _concat(batches: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    batches = list(batches)
    if not batches:
        raise ValueError("No batches to measure")
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def shapes(batch: Mapping[str, np.ndarray]) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype)] for k, v in sorted(batch.items())}


def span_corruption_stats(batches: Iterable[Mapping[str, np.ndarray]], vocab_size: int, extra_ids: int) -> dict:
    """Noise density (masked fraction of original tokens), mean noise span length, padding, sentinels used."""
    b = _concat(batches)
    inputs, targets = b["encoder_input_tokens"], b["decoder_target_tokens"]
    first_sentinel = vocab_size - extra_ids
    is_sentinel_in, is_sentinel_tg = inputs >= first_sentinel, targets >= first_sentinel
    text = lambda x, s: (x > vocab.EOS_ID) & ~s
    noise = int(text(targets, is_sentinel_tg).sum())
    kept = int(text(inputs, is_sentinel_in).sum())
    spans = int(is_sentinel_in.sum())
    return {
        "examples": int((b["encoder_segment_ids"] > 0).any(axis=1).sum()),
        "inputs_length": int(inputs.shape[1]),
        "targets_length": int(targets.shape[1]),
        "noise_density": noise / max(noise + kept, 1),
        "mean_noise_span_length": noise / max(spans, 1),
        "padding_fraction": float((inputs == vocab.PAD_ID).mean()),
        "targets_padding_fraction": float((targets == vocab.PAD_ID).mean()),
        "sentinel_ids": sorted(int(i) for i in np.unique(inputs[is_sentinel_in])),
    }


def mlm_stats(batches: Iterable[Mapping[str, np.ndarray]], mask_id: int) -> dict:
    """Masked fraction of non-pad tokens and how the masked positions were replaced (80/10/10)."""
    b = _concat(batches)
    inputs, targets = b["encoder_input_tokens"], b["encoder_target_tokens"]
    masked = b["encoder_loss_weights"] > 0
    num_masked = max(int(masked.sum()), 1)
    to_mask = masked & (inputs == mask_id)
    unchanged = masked & (inputs == targets)
    return {
        "examples": int(inputs.shape[0]),
        "inputs_length": int(inputs.shape[1]),
        "num_predictions": int(b["mlm_positions"].shape[1]),
        "mask_rate": int(masked.sum()) / max(int((targets != vocab.PAD_ID).sum()), 1),
        "mask_token_id": int(mask_id),
        "replaced_with_mask": int(to_mask.sum()) / num_masked,
        "replaced_with_random": int((masked & ~to_mask & ~unchanged).sum()) / num_masked,
        "kept_unchanged": int(unchanged.sum()) / num_masked,
        "padding_fraction": float((targets == vocab.PAD_ID).mean()),
        "segments_per_row": float(b["encoder_segment_ids"].max(axis=1).mean()),
    }
