"""A tiny T5 on the embedded State-of-the-Union corpus: runs on a laptop CPU in about two minutes.

python -m scaling.train --config=configs/demo.py --workdir=/tmp/scaling-demo
"""

from scaling.training import trainer


def get_config():
    config = trainer.default_config()
    config.model.name = "tiny-nl2"
    config.model.dropout_rate = 0.0
    config.data.task = "sotu_span_corruption"
    config.data.inputs_length = 128
    config.data.targets_length = 29  # what span corruption of 128 input tokens leaves (T5 recipe)
    config.data.eval_batches = 4
    config.batch_size = 16
    config.optimizer.learning_rate = 0.01
    config.optimizer.warmup_steps = 100
    config.budget.unit = "steps"
    config.budget.amount = 200
    config.log_every_steps = 25
    config.eval_every_steps = 100
    config.checkpoint.save_interval_steps = 100
    return config
