"""The papers' training recipes as configs: each `configs/*.py` file picks a recipe and a shape.

Values are the papers' own where they print them (cited inline); where a paper is silent the choice is
marked as ours. Every field can still be overridden with `--config.FIELD=VALUE`.
"""

from __future__ import annotations

import ml_collections

from scaling import shapes
from scaling.data.vocab import T5_VOCAB_SIZE
from scaling.training import trainer


def scale_efficiently(shape: str) -> ml_collections.ConfigDict:
    """Tay et al. (2022) Section 3: T5 span corruption on C4, 2^19 steps at batch 128, inputs 512 / targets 114,
    Adafactor with T5's inverse-square-root schedule (0.01 for 10k steps, then 1/sqrt(step))."""
    config = trainer.default_config()
    config.model.name = shape
    config.model.vocab_size = T5_VOCAB_SIZE
    config.data.task = "c4_span_corruption"
    config.data.inputs_length, config.data.targets_length = 512, 114
    config.batch_size = 128
    config.optimizer.name, config.optimizer.schedule = "adafactor", "inverse_sqrt"
    config.optimizer.learning_rate, config.optimizer.warmup_steps = 0.01, 10_000
    config.budget.unit, config.budget.amount = "steps", 2**19
    config.log_every_steps, config.eval_every_steps = 100, 5_000
    config.checkpoint.save_interval_steps = 5_000
    if shapes.parse(shape).preset in ("xxl", "xxxl"):
        # Ours: parameters, gradients and optimizer state sharded over all devices (the paper used Mesh TF
        # model parallelism; add it with --config.parallel.model=N --config.parallel.fsdp=-1).
        config.parallel.data, config.parallel.fsdp = 1, -1
    return config


def train_large_then_compress(depth: int, width: int, hours: float = 24.0) -> ml_collections.ConfigDict:
    """Li et al. (2020) Section 2.1: pre-norm RoBERTa MLM at sequence length 128 and batch 8192, every grid
    point trained for the same wall-clock time; AdamW at 0.0015, the rate Appendix Table 1 gives for 8192."""
    config = trainer.default_config()
    config.model.name = f"roberta-l{depth}-h{width}"
    config.model.vocab_size = T5_VOCAB_SIZE  # our C4 tokenizer (RoBERTa's BPE is not shipped)
    config.data.task = "c4_mlm"
    config.data.inputs_length = 128
    config.batch_size, config.micro_batch_size = 8192, 256
    config.optimizer.name, config.optimizer.learning_rate = "adamw", 0.0015
    # RoBERTa's AdamW settings (Liu et al. 2019): beta2 0.98, eps 1e-6, weight decay 0.01; warmup and linear
    # decay over the budget (the 6% warmup is ours).
    config.optimizer.b2, config.optimizer.eps, config.optimizer.weight_decay = 0.98, 1e-6, 0.01
    config.optimizer.schedule, config.optimizer.warmup_fraction = "linear", 0.06
    config.budget.unit, config.budget.amount = "seconds", hours * 3600
    config.log_every_steps, config.eval_every_steps = 10, 200
    config.checkpoint.save_interval_steps = 200
    return config


def cramming(hours: float = 24.0) -> ml_collections.ConfigDict:
    """Geiping & Goldstein (2023) Section 4.3: the crammed BERT for one day on one device — AdamW (beta2 0.98,
    eps 1e-12, weight decay 0.01, clipping 0.5), a budget-tied one-cycle to peak 1e-3 and back to zero when the
    budget ends, batch 8192 ramped up linearly over the first 60%, 25% masking at length 128."""
    config = trainer.default_config()
    config.model.name = "crammed-bert"
    config.model.vocab_size = T5_VOCAB_SIZE  # our C4 tokenizer (Cramming's 2^15 WordPiece is not shipped)
    config.data.task = "c4_cramming_mlm"
    config.data.inputs_length = 128
    config.batch_size, config.micro_batch_size = 8192, 128
    config.optimizer.name, config.optimizer.learning_rate = "adamw", 1e-3
    config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.98, 1e-12
    config.optimizer.weight_decay, config.optimizer.grad_clip_norm = 0.01, 0.5
    # "a triangular shape that mimics a long warmup period with a quick decay" (§4.3), as the authors' code defines it
    # (budget-triangle2: 25% of the peak at the start, the peak at 75% of the budget; see `optim.triangle`).
    config.optimizer.schedule, config.optimizer.peak_fraction = "triangle", 0.75
    config.optimizer.batch_ramp_fraction = 0.6
    config.budget.unit, config.budget.amount = "seconds", hours * 3600
    config.log_every_steps, config.eval_every_steps = 10, 500
    config.checkpoint.save_interval_steps = 100
    return config
