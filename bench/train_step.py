"""Our jitted train step against Hugging Face `transformers` (PyTorch) doing the same work, in one process.

    python bench/train_step.py [--shapes small small-nl24-dm256 bert-base-nl4] [--batch 8]
        [--inputs-length 128] [--targets-length 32] [--rounds 5] [--steps 3] [--warmup 2] [--device cuda]
        [--dtype bfloat16] [--json]

Ours is the step the trainer compiles (`trainer.build_run`, `init_state`, `compile_steps`, fed
`profile.synthetic_batch`): T5 from *Scale Efficiently*'s recipe with AdamW at a constant rate
(`common.t5_config`), BERT from Cramming's recipe (AdamW b2 0.98, eps 1e-12, weight decay 0.01, clipping 0.5)
at a constant rate and without the batch ramp. The peer is `T5ForConditionalGeneration` / `BertForMaskedLM`
built from the same resolved shape with random weights, trained on the same batch with `torch.optim.AdamW`
(fused, the Hugging Face Trainer's default) at the same hyperparameters. T5 shapes with SH or SKV and BERT
shapes `BertForMaskedLM` cannot express (crammed-bert, roberta-l*) are refused rather than compared unequally.

Same work means: float32, dropout 0, identical batch size and lengths, the same token ids; one forward,
backward and optimizer update per step, no gradient accumulation; loss = mean token cross-entropy over the
targets (T5: every target token, HF via `labels=` with our `decoder_input_tokens` as `decoder_input_ids`;
BERT: the masked positions, HF `labels` = -100 elsewhere). Both predict densely: the MLM head runs on every
position on both sides (the bert-* presets have no sparse prediction). Weight decay skips 1-D parameters
(norms, biases) on both sides, as our `optim.decay_mask` does. Tokens per step are counted the same on both
sides: batch × (inputs + targets) for T5, batch × inputs for BERT. Both use every core:
`torch.set_num_threads(os.cpu_count())` and XLA's default thread pool. `--device cuda` puts the peer on the GPU
(ours runs on jax's default device), with TF32 matmuls allowed as XLA allows them for float32 on GPUs;
`--dtype bfloat16` computes ours in bfloat16 with float32 parameters and runs the peer under
`torch.autocast(device, torch.bfloat16)`.

Known differences: our step also computes the global gradient norm, accuracy and a finite-loss check (the
trainer's NaN policy); `BertForMaskedLM` uses `hidden_act` for its head transform, so its head GELU is the
tanh form where ours is exact (our feed-forward GELU is tanh on both sides); the peer runs eagerly with its
default attention (`peer_attention` in the row).

Measurement: after compiling ours and `--warmup` untimed steps of each, `--rounds` rounds alternate
`--steps` timed steps of ours then `--steps` of the peer (a short pause before each block lets the other
runtime's spinning worker threads go idle). Each round gives seconds/step per side and a paired ratio of
tokens/s, ours/peer. A row reports each side's median seconds/step and the tokens/s it gives, the median of
the per-round ratios (`ratio`, so it lies within the spread) with their `ratio_min` / `ratio_max`, and both
sides' loss at the first (untimed) step. The default shapes take minutes on a 2-core CPU; full small-nl24
and bert-base are for a GPU (both libraries use their default device; this environment's torch is CPU-only).
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

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch
import transformers
from common import emit, t5_config

from scaling import shapes
from scaling.convert import hf
from scaling.experiments import profile, recipes
from scaling.training import trainer

Step = Callable[[], float]  # one full train step, finished on return; gives the step's loss
COLUMNS = (
    "shape",
    "family",
    "batch",
    "inputs_length",
    "targets_length",
    "ours_tokens_per_second",
    "peer_tokens_per_second",
    "ratio",
    "ratio_min",
    "ratio_max",
    "ours_seconds_per_step",
    "peer_seconds_per_step",
)
# Shape fields BertForMaskedLM hard-wires: post-LN BERT with biases, learned positions and the full MLM head.
_HF_BERT = {
    "ffn_activation": "gelu",
    "ffn_gating": "none",
    "position_embedding": "learned",
    "norm_kind": "layer",
    "norm_position": "post",
    "attention_bias": True,
    "linear_bias": True,
    "embedding_norm": True,
    "final_norm": False,
    "head_transform": True,
    "decoder_bias": True,
    "tie_embeddings": True,
    "sparse_prediction": False,
    "layer_sharing": "none",
}
PAUSE_SECONDS = 0.2


# ------------------------------------------------------------------------------------------------ configs


def bert_config(shape: str, *, batch: int, inputs: int) -> ml_collections.ConfigDict:
    """Cramming's recipe (its AdamW settings and clipping) at a benchmark batch: one micro-batch, a constant
    rate and no batch ramp, so every timed step is the same full step on both sides."""
    config = recipes.cramming()
    config.data.task = "sotu_cramming_mlm"  # the curated C4 task refuses to run unprepared; the bench times steps
    config.model.name = shape
    config.data.inputs_length = inputs
    config.batch_size, config.micro_batch_size = batch, None
    config.model.dropout_rate, config.model.dtype = 0.0, "float32"
    config.optimizer.schedule, config.optimizer.batch_ramp_fraction = "constant", 0.0
    return config


def config_for(shape: str, *, batch: int, inputs: int, targets: int) -> ml_collections.ConfigDict:
    """Our config for a T5 or BERT shape name, float32 with dropout 0 and AdamW."""
    if shapes.parse(shape).is_encoder_decoder:
        return t5_config(shape, batch=batch, inputs=inputs, targets=targets, optimizer="adamw")
    return bert_config(shape, batch=batch, inputs=inputs)


def tokens_per_step(run: trainer.Run) -> int:
    """Tokens one step consumes, counted the same for both sides."""
    lengths = run.feature_lengths
    return run.config.batch_size * (lengths["inputs"] + lengths.get("targets", 0))


# --------------------------------------------------------------------------------------------------- ours


def ours(run: trainer.Run, batch: dict[str, jax.Array]) -> Step:
    """One optimizer step as the trainer runs it (`Compiled.step`, as `profile.profile` times it)."""
    state = trainer.init_state(run)
    compiled = trainer.compile_steps(run, state, batch)
    key = jax.random.key(run.config.seed)
    lr = jnp.float32(run.schedule(0.0, 0))

    def step() -> float:
        nonlocal state
        state, metrics = compiled.step(state, [batch] * run.full_microbatches, key, lr)
        state = jax.block_until_ready(state)
        return float(metrics["loss"])

    return step


# --------------------------------------------------------------------------------------------------- peer


def peer_model(shape: shapes.Shape) -> transformers.PreTrainedModel:
    """transformers' model for our resolved shape (random weights), or a refusal where it would differ."""
    if shape.is_encoder_decoder:
        if shape.shared_heads or shape.tied_kv:
            raise ValueError(
                f"{shape.name}: transformers' T5 has no shared heads or tied key-values; it would "
                f"compute full heads, so the comparison would not be the same work"
            )
        return transformers.T5ForConditionalGeneration(transformers.T5Config(**hf.hf_config(shape), use_cache=False))
    differ = {k: getattr(shape, k) for k, v in _HF_BERT.items() if getattr(shape, k) != v}
    if differ or shape.type_vocab_size < 1:
        raise ValueError(
            f"{shape.name}: BertForMaskedLM cannot express {differ or {'type_vocab_size': 0}}; "
            f"use a bert-* preset (bert-tiny, bert-mini, bert-base, bert-large) with knobs"
        )
    return transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=shape.vocab_size,
            hidden_size=shape.d_model,
            num_hidden_layers=shape.num_encoder_layers,
            num_attention_heads=shape.num_heads,
            intermediate_size=shape.d_ff,
            hidden_act="gelu_new",
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            max_position_embeddings=shape.max_length,
            type_vocab_size=shape.type_vocab_size,
            layer_norm_eps=shape.norm_eps,
            tie_word_embeddings=True,
        )
    )


def peer_inputs(shape: shapes.Shape, batch: dict[str, jax.Array]) -> dict[str, torch.Tensor]:
    """Our batch as transformers' keyword arguments; unweighted target positions become the ignored label -100."""

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(batch[key], np.int64))

    def weights(key: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(batch[key]) > 0)

    inputs = {"input_ids": tensor("encoder_input_tokens"), "attention_mask": weights("encoder_segment_ids").long()}
    if shape.is_encoder_decoder:
        labels = tensor("decoder_target_tokens").masked_fill(~weights("decoder_loss_weights"), -100)
        return inputs | {"decoder_input_ids": tensor("decoder_input_tokens"), "labels": labels}
    return inputs | {"labels": tensor("encoder_target_tokens").masked_fill(~weights("encoder_loss_weights"), -100)}


def peer_optimizer(model: torch.nn.Module, config: ml_collections.ConfigDict, lr: float) -> torch.optim.Optimizer:
    """Fused AdamW at our hyperparameters; like `optim.decay_mask`, no weight decay on 1-D parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(config.b1, config.b2), eps=config.eps, fused=True)


def peer(run: trainer.Run, batch: dict[str, jax.Array], device: str = "cpu") -> tuple[Step, str]:
    """transformers' train step on our batch (on `device`, autocast to our compute dtype if it is not float32),
    and its attention implementation."""
    torch.set_num_threads(os.cpu_count())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as XLA does on GPUs
    torch.manual_seed(run.config.seed)
    model = peer_model(run.shape).to(device).train()
    settings = run.config.optimizer
    optimizer = peer_optimizer(model, settings, float(run.schedule(0.0, 0)))
    inputs = {k: v.to(device) for k, v in peer_inputs(run.shape, batch).items()}
    dtype = getattr(torch, np.dtype(run.dtype).name)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(**inputs).loss
        loss.backward()
        if settings.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
        optimizer.step()
        return loss.item()

    return step, model.config._attn_implementation


# ---------------------------------------------------------------------------------------------- measuring


def seconds_per_step(step: Step, steps: int) -> float:
    """Mean wall seconds of `steps` consecutive steps, after a pause that lets idle worker threads sleep."""
    time.sleep(PAUSE_SECONDS)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def optimizer_label(config: ml_collections.ConfigDict) -> str:
    """The optimizer settings both sides run, so a row says which step it timed."""
    o = config.optimizer
    clip = f" clip={o.grad_clip_norm:g}" if o.grad_clip_norm > 0 else ""
    return f"adamw lr={o.learning_rate:g} b1={o.b1:g} b2={o.b2:g} eps={o.eps:g} wd={o.weight_decay:g}{clip}"


def compare(
    config: ml_collections.ConfigDict, *, rounds: int = 5, steps: int = 3, warmup: int = 2, device: str = "cpu"
) -> dict[str, Any]:
    """One row: both sides warmed up, then `rounds` alternating blocks of `steps` timed steps each (the peer on
    `device`)."""
    if rounds < 1 or steps < 1 or warmup < 1:
        raise ValueError(f"rounds = {rounds}, steps = {steps} and warmup = {warmup} must all be >= 1")
    run = trainer.build_run(config)
    batch = profile.synthetic_batch(run)
    ours_step = ours(run, batch)
    peer_step, attention = peer(run, batch, device)
    losses = ours_step(), peer_step()
    for _ in range(warmup - 1):
        ours_step()
        peer_step()
    times = [(seconds_per_step(ours_step, steps), seconds_per_step(peer_step, steps)) for _ in range(rounds)]
    tokens = tokens_per_step(run)
    ratios = [peer_time / ours_time for ours_time, peer_time in times]
    ours_time, peer_time = (statistics.median(t[i] for t in times) for i in (0, 1))
    return {
        "shape": run.shape.name,
        "family": run.shape.family,
        "batch": config.batch_size,
        "inputs_length": run.feature_lengths["inputs"],
        "targets_length": run.feature_lengths.get("targets", 0),
        "optimizer": optimizer_label(config),
        "dtype": np.dtype(run.dtype).name,
        "ours_tokens_per_second": tokens / ours_time,
        "peer_tokens_per_second": tokens / peer_time,
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ours_seconds_per_step": ours_time,
        "peer_seconds_per_step": peer_time,
        "ours_loss_at_init": losses[0],
        "peer_loss_at_init": losses[1],
        "rounds": rounds,
        "steps": steps,
        "peer": f"transformers {transformers.__version__} / torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {device}",
        "peer_attention": attention,
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["small", "small-nl24-dm256", "bert-base-nl4"],
        help="T5 and bert-* shape names; full small-nl24 / bert-base are for a GPU",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs-length", type=int, default=128)
    parser.add_argument("--targets-length", type=int, default=32, help="T5 only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps per side first (the first gives the loss at init)"
    )
    parser.add_argument("--device", default="cpu", help="the peer's torch device, e.g. cuda")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="compute dtype")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for s in args.shapes:
        config = config_for(s, batch=args.batch, inputs=args.inputs_length, targets=args.targets_length)
        config.model.dtype = args.dtype
        rows.append(compare(config, rounds=args.rounds, steps=args.steps, warmup=args.warmup, device=args.device))
    emit(rows, COLUMNS, args.json)
    return rows


if __name__ == "__main__":
    main()
