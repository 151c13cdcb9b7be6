"""Study 1, *Train Large, Then Compress* (Li et al. 2020) in miniature: does a larger encoder, trained for the
same wall-clock time, reach a lower loss, and does it compress better?

    python -m scaling.study --config=configs/study_train_large.py --out=/tmp/study-train-large

A 2 × 2 depth × width grid of pre-norm RoBERTa encoders (2 or 6 layers, width 128 or 384, FFN 4H, H/64 heads:
1.5 M to 14 M parameters, 9×) is trained with MLM on the embedded corpus for the same 120 seconds each, with
the paper's optimizer form (AdamW, β2 0.98, ε 1e-6, warmup then linear decay to zero at the budget's end).
Prediction is sparse (logits at masked positions only), as in fairseq's RoBERTa. Each model is finetuned on
the offline sentiment task (rotten_tomatoes), then quantized to 8/6/4 bits and pruned 15% → 90% with recovery
finetuning (Li et al. Sections 4.2–4.3). About 30 minutes on 2 CPU cores; ``:smoke`` is CI's one-minute form.
"""

from scaling.experiments import study

GRID = {"l2_h128": (2, 128), "l6_h128": (6, 128), "l2_h384": (2, 384), "l6_h384": (6, 384)}


def shape(depth: int, width: int) -> str:
    return f"roberta-l3-h256-nl{depth}-dm{width}-ff{4 * width}-nh{width // 64}"


def get_config(variant: str = ""):
    if variant not in ("", "smoke"):
        raise ValueError(f"configs/study_train_large.py:{variant}: the only variant is 'smoke'")
    config = study.default_config()
    config.name = config.kind = "train_large_then_compress"
    config.recipe = "configs/li_roberta.py:l3-h256"
    config.budget = "seconds:120"
    config.common = {
        "model": {"vocab_size": None, "switches": "sparse_prediction=true"},  # the embedded corpus' vocabulary
        "data": {"task": "sotu_mlm", "inputs_length": 128, "eval_batches": 8},
        "batch_size": 16,
        "micro_batch_size": None,
        "optimizer": {"learning_rate": 1e-3},  # the paper's 0.0015 is for batch 8192; ours is 16
        "log_every_steps": 10,
        "eval_every_steps": 0,
        "checkpoint": {"save_interval_steps": 200},
    }
    config.runs = {name: {"model": {"name": shape(*dims)}} for name, dims in GRID.items()}
    config.order = ",".join(GRID)
    config.finetune.recipe = "configs/finetune.py:demo"
    config.finetune.tasks = "rotten_tomatoes"
    config.finetune.overrides = {"max_train_examples": 4000}
    config.compress.enabled = True
    config.compress.bits = "8,6,4"
    config.compress.sparsities = "0.15,0.3,0.5,0.7,0.9"
    config.compress.combined_bits = "6,4"
    config.compress.recovery_epochs = 0.25
    if variant == "smoke":
        config.runs = {
            name: {"model": {"name": shape(depth, width // 2)}}
            for name, (depth, width) in GRID.items()
            if name in ("l2_h128", "l6_h384")
        }
        config.order = ",".join(config.runs)
        config.budget = "seconds:4"
        config.common.data.eval_batches = 1
        config.common.log_every_steps = 2
        config.finetune.overrides = {"max_train_examples": 64, "max_eval_examples": 64, "epochs": 1}
        config.compress.sparsities = "0.5,0.9"
        config.compress.combined_bits = "4"
    return config
