"""Downstream finetuning with one global set of hyperparameters (Cramming Section 5): AdamW, batch 16,
learning rate 4e-5, cosine decay with 10% warmup, dropout 0.1, 5 epochs, median over three seeds.

    python -m scaling.finetune --config=configs/finetune.py --workdir=DIR --config.init_from=PRETRAIN_WORKDIR \\
        [--config.tasks=rotten_tomatoes,movie_ratings,trec,sms_spam]

`configs/finetune.py:demo` is the same recipe for the tiny demo models on a CPU: learning rate 3e-4 (4e-5 is
tuned for BERT-base-sized encoders and barely moves a 2-layer model), inputs of 64 tokens (the offline tasks'
texts are short), two epochs and one seed:

    python -m scaling.finetune --config=configs/finetune.py:demo --workdir=/tmp/scaling-demo-ft \\
        --config.init_from=/tmp/scaling-demo
"""

from scaling.downstream import finetune

OFFLINE_SUITE = "rotten_tomatoes,movie_ratings,trec,sms_spam"


def get_config(variant: str = ""):
    config = finetune.default_config()
    config.tasks = OFFLINE_SUITE
    if variant == "demo":
        config.optimizer.learning_rate = 3e-4
        config.inputs_length = 64
        config.epochs = 2
        config.seeds = "0"
    elif variant:
        raise ValueError(f"configs/finetune.py:{variant}: the only variant is 'demo'")
    return config
