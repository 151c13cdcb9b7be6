"""A tiny T5 learning the offline English→pseudo-French corpus: the translation path end to end on a laptop CPU.

    python -m scaling.translate --config=configs/translate_offline.py --workdir=/tmp/scaling-translate

Trains on `sotu_en_pseudofr` (sentences of the embedded State of the Union speeches and their deterministic
pseudo-French, scaling.data.translation.pseudo_french), logs greedy `eval_bleu` on 32 validation sentences at
every evaluation, and ends with beam-4 BLEU on the first 64 validation sentences
(WORKDIR/bleu_sotu_en_pseudofr_validation.json).
"""

from scaling.data import translation
from scaling.downstream import translation as evaluation
from scaling.training import trainer


def get_config():
    config = trainer.default_config()
    config.model.name = "tiny-nl2-dm128-ff512-nh2"
    config.model.dropout_rate = 0.0
    config.data.task = translation.OFFLINE_TASK
    config.data.inputs_length = 48  # the prefix and 99% of the sentences (4 to 24 words); targets run longer
    config.data.targets_length = 64
    config.data.eval_batches = 4
    config.batch_size = 32
    config.optimizer.name, config.optimizer.learning_rate = "adamw", 5e-3
    config.optimizer.schedule, config.optimizer.warmup_fraction = "linear", 0.05
    config.budget.unit, config.budget.amount = "steps", 400
    config.log_every_steps, config.eval_every_steps = 25, 100
    config.checkpoint.save_interval_steps = 100
    config.translation = evaluation.default_config()
    config.translation.bleu_examples = 32
    config.translation.eval_examples = 64
    return config
