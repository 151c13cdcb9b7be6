"""Downstream finetuning with one global set of hyperparameters (Cramming Section 5): AdamW, batch 16,
learning rate 4e-5, cosine decay with 10% warmup, dropout 0.1, 5 epochs, median over three seeds.

    python -m scaling.finetune --config=configs/finetune.py --workdir=DIR --config.init_from=PRETRAIN_WORKDIR \\
        [--config.tasks=rotten_tomatoes,movie_ratings,trec,sms_spam]

`configs/finetune.py:demo` is the same recipe for the tiny demo models on a CPU: learning rate 3e-4 (4e-5 is
tuned for BERT-base-sized encoders and barely moves a 2-layer model), inputs of 64 tokens (the offline tasks'
texts are short), two epochs and one seed:

    python -m scaling.finetune --config=configs/finetune.py:demo --workdir=/tmp/scaling-demo-ft \\
        --config.init_from=/tmp/scaling-demo

`configs/finetune.py:t5` is *Scale Efficiently*'s own recipe for its T5s (Tay et al. 2022, Appendix "Diverse NLP
tasks": Adafactor, a constant learning rate of 1e-3 at batch 128), scaled to our batch of 16 by the square-root
rule for adaptive optimizers (1e-3 × sqrt(16/128) ≈ 3.5e-4; Malladi et al. 2022), with T5's finetuning dropout
0.1; `:t5_demo` is the same with the demo's inputs of 64 tokens, two epochs and one seed.
"""

import math

from scaling.downstream import finetune

OFFLINE_SUITE = "rotten_tomatoes,movie_ratings,trec,sms_spam"
VARIANTS = ("demo", "t5", "t5_demo")


def get_config(variant: str = ""):
    if variant and variant not in VARIANTS:
        raise ValueError(f"configs/finetune.py:{variant}: the variants are {', '.join(VARIANTS)}")
    config = finetune.default_config()
    config.tasks = OFFLINE_SUITE
    if variant.startswith("t5"):
        config.optimizer.update(
            name="adafactor",
            learning_rate=1e-3 * math.sqrt(config.batch_size / 128),
            schedule="constant",
            warmup_fraction=0.0,
            weight_decay=0.0,
        )
    if variant.endswith("demo"):
        if variant == "demo":
            config.optimizer.learning_rate = 3e-4
        config.inputs_length = 64
        config.epochs = 2
        config.seeds = "0"
    return config
