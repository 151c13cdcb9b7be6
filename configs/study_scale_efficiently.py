"""Study 2, *Scale Efficiently* (Tay et al. 2022) in miniature: from a small T5, double one knob at a time and
ask which one buys the most upstream quality per parameter, per FLOP and per second of measured step time.

    python -m scaling.study --config=configs/study_scale_efficiently.py --out=/tmp/study-scale-efficiently

The base is a two-layer T5 of width 128 (``tiny-nl2-dm128-ff512-nh2``: DM 128, FF 512, NH 2, KV 64). Each other
run doubles one knob — NL, DM or FF, the three the paper's DeepNarrow claim compares (§3) — and every run trains
span corruption on the embedded corpus for the same number of steps (batch 32, inputs 128, targets 29) with T5's
pretraining optimizer: Adafactor at a constant 0.01, which is T5's inverse-square-root schedule before its
10,000 warm-up steps end (Raffel et al. 2019 §3.1.2), three pretraining seeds each. The budget is chosen so that
every run ends clearly below the trivial baselines of span corruption (the report measures them). Step time
comes from the profiler on a quiet machine. Each model, and the base shape without pretraining (the control), is
then finetuned with the paper's own recipe (``configs/finetune.py:t5_demo``: Adafactor, constant learning rate)
on rotten_tomatoes and sms_spam, each metric reported by itself. About three hours on 2 CPU cores; ``:smoke`` is
CI's one-minute form.
"""

from scaling.experiments import study, sweep

BASE = "tiny-nl2-dm128-ff512-nh2"
DOUBLED = {"nl": 4, "dm": 256, "ff": 1024}


def get_config(variant: str = ""):
    if variant not in ("", "smoke"):
        raise ValueError(f"configs/study_scale_efficiently.py:{variant}: the only variant is 'smoke'")
    config = study.default_config()
    config.name = config.kind = "scale_efficiently"
    config.recipe = "configs/demo.py"
    config.budget = "steps:1500"
    config.seeds = "0,1,2"
    config.reference = "base"
    config.controls.no_pretraining = True
    config.common = {
        "batch_size": 32,
        "optimizer": {"schedule": "constant", "learning_rate": 0.01},
        "data": {"eval_batches": 8},
        "log_every_steps": 50,
        "eval_every_steps": 500,
        "checkpoint": {"save_interval_steps": 250},
    }
    runs = {"base": BASE}
    runs.update({f"{op}{value}": sweep.shape_name(BASE, {op: str(value)}) for op, value in DOUBLED.items()})
    config.profile.steps, config.profile.warmup = 10, 2
    config.finetune.recipe = "configs/finetune.py:t5_demo"
    config.finetune.tasks = "rotten_tomatoes,sms_spam"
    config.finetune.overrides = {"max_train_examples": 2000, "max_eval_examples": 1000, "epochs": 1}
    if variant == "smoke":
        config.baseline_train_rows = 256  # one read batch: smoke checks the table, not the baseline's precision
        runs = {"base": "tiny-nl1-dm64-ff256-nh2-kv32", "nl2": "tiny-nl2-dm64-ff256-nh2-kv32"}
        config.budget = "steps:4"
        config.seeds = "0,1"
        config.common.data.eval_batches = 1
        config.common.log_every_steps = 2
        config.common.eval_every_steps = 0
        config.profile.steps, config.profile.peak_sizes = 1, "256"
        config.finetune.tasks = "sms_spam"
        config.finetune.overrides = {"max_train_examples": 32, "max_eval_examples": 32, "epochs": 1}
    config.runs = {name: {"model": {"name": shape}} for name, shape in runs.items()}
    config.order = ",".join(runs)
    return config
