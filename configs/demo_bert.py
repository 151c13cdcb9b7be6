"""A tiny BERT on the embedded State-of-the-Union corpus (MLM): the encoder counterpart of configs/demo.py.

python -m scaling.train --config=configs/demo_bert.py --workdir=/tmp/scaling-demo-bert
"""

from scaling.training import trainer


def get_config():
    config = trainer.default_config()
    config.model.name = "bert-tiny"
    config.model.dropout_rate = 0.0
    config.data.task = "sotu_mlm"
    config.data.inputs_length = 128
    config.data.eval_batches = 4
    config.batch_size = 16
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "linear"
    config.optimizer.warmup_fraction = 0.05
    config.optimizer.weight_decay = 0.01
    config.budget.unit = "steps"
    config.budget.amount = 300
    config.log_every_steps = 25
    config.eval_every_steps = 100
    config.checkpoint.save_interval_steps = 100
    return config
