"""Study 2, *Scale Efficiently* (Tay et al. 2022) in miniature: from a tiny T5, double one knob at a time and
ask which one buys the most quality per parameter, per FLOP and per second of measured step time.

    python -m scaling.study --config=configs/study_scale_efficiently.py --out=/tmp/study-scale-efficiently

The base is T5 ``tiny`` at two layers (``tiny-nl2``: DM 256, FF 1024, NH 4, KV 64). Each other run doubles one
knob — NL, DM, FF, NH or KV — and every run trains span corruption on the embedded corpus for the same 120 steps
(batch 16, inputs 128, targets 29; Adafactor at 0.01 with T5's inverse square root after 50 steps). Upstream
quality is the final eval loss; step time is measured by the profiler on synthetic batches; each model is then
finetuned on two tasks of the offline suite (rotten_tomatoes and sms_spam, 1000 examples each, one epoch) and
scored by rank classification. About 25 minutes on 2 CPU cores; ``:smoke`` is CI's one-minute form.
"""

from scaling.experiments import study, sweep

BASE = "tiny-nl2"
DOUBLED = {"nl": 4, "dm": 512, "ff": 2048, "nh": 8, "kv": 128}


def get_config(variant: str = ""):
    if variant not in ("", "smoke"):
        raise ValueError(f"configs/study_scale_efficiently.py:{variant}: the only variant is 'smoke'")
    config = study.default_config()
    config.name = config.kind = "scale_efficiently"
    config.recipe = "configs/demo.py"
    config.budget = "steps:120"
    config.common = {
        "optimizer": {"warmup_steps": 50},
        "data": {"eval_batches": 8},
        "log_every_steps": 10,
        "eval_every_steps": 0,
        "checkpoint": {"save_interval_steps": 200},
    }
    runs = {"base": BASE}
    runs.update({f"{op}{value}": sweep.shape_name(BASE, {op: str(value)}) for op, value in DOUBLED.items()})
    config.profile.steps, config.profile.warmup = 5, 1
    config.finetune.recipe = "configs/finetune.py:demo"
    config.finetune.tasks = "rotten_tomatoes,sms_spam"
    config.finetune.overrides = {"max_train_examples": 1000, "max_eval_examples": 500, "epochs": 1}
    if variant == "smoke":
        runs = {"base": "tiny-nl1-dm64-ff256-nh2-kv32", "nl2": "tiny-nl2-dm64-ff256-nh2-kv32"}
        config.budget = "steps:4"
        config.common.data.eval_batches = 1
        config.common.log_every_steps = 2
        config.profile.steps = 1
        config.finetune.tasks = "sms_spam"
        config.finetune.overrides = {"max_train_examples": 32, "max_eval_examples": 32, "epochs": 1}
    config.runs = {name: {"model": {"name": shape}} for name, shape in runs.items()}
    config.order = ",".join(runs)
    return config
