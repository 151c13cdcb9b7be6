"""Train Large, Then Compress, Figure 5: one cell of the WMT14 English→French depth × width grid.

    python -m scaling.translate --config=configs/translate_wmt14.py:l6-h512 --workdir=...

The argument is `l{2,6,8}-h{128,256,512,1024,2048}` (default l6-h512, Transformer-base's size). Li et al. train
"the standard Transformer architecture and hyperparameters" (Vaswani et al. 2017) for the same wall-clock time
at every size and plot BLEU on newstest2013 (`eval_bleu`, greedy, logged at every evaluation) against steps and
seconds. Here the Transformer is our T5 encoder-decoder (pre-norm RMS, relative positions, tied embeddings)
at the paper's depth and width, with Transformer's proportions: FFN 4H, H/64 heads of 64, dropout 0.1. The
vocabulary is T5's (English, French, German, Romanian), as in T5's WMT runs.
"""

import re

from scaling import shapes
from scaling.data import translation
from scaling.data.vocab import T5_VOCAB_SIZE
from scaling.downstream import translation as evaluation
from scaling.training import trainer

DEPTHS = (2, 6, 8)
WIDTHS = (128, 256, 512, 1024, 2048)


def shape(depth: int, width: int) -> str:
    """The grid cell's canonical shape name: `small` with NL (both stacks), DM, FF = 4·DM and NH = DM/64 set
    (l6-h512 is `small`, Transformer-base's size; l2-h128 is `small-nl2-dm128-ff512-nh2`)."""
    return shapes.parse(f"small-nl{depth}-dm{width}-ff{4 * width}-nh{width // 64}").name


def get_config(arg: str = "l6-h512"):
    match = re.fullmatch(r"l(\d+)-h(\d+)", arg or "l6-h512")
    if not match or int(match.group(1)) not in DEPTHS or int(match.group(2)) not in WIDTHS:
        raise ValueError(
            f"configs/translate_wmt14.py:{arg}: use l<depth>-h<width> with depth in {DEPTHS} and "
            f"width in {WIDTHS}, e.g. l6-h512"
        )
    depth, width = int(match.group(1)), int(match.group(2))
    config = trainer.default_config()
    config.model.name = shape(depth, width)
    config.model.vocab_size = T5_VOCAB_SIZE
    config.model.dropout_rate = 0.1  # Vaswani et al.'s P_drop
    config.data.task = translation.WMT14_TASK
    # Ours: 256 tokens a side, packed; 128 rows a step is about Vaswani et al.'s 25k source + 25k target tokens.
    config.data.inputs_length = config.data.targets_length = 256
    config.data.eval_batches = 20
    config.batch_size = 128
    # Vaswani et al.'s Adam (beta2 0.98, eps 1e-9) at the peak of their schedule, d^-0.5 · 4000^-0.5; the schedule
    # is ours: linear warmup over the first 4% of the budget (their 4,000 of 100k steps), then linear decay,
    # since every cell trains for the same wall-clock time (Li et al. Section 2.2), not the same steps.
    config.optimizer.name, config.optimizer.learning_rate = "adamw", (width * 4000) ** -0.5
    config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.98, 1e-9
    config.optimizer.schedule, config.optimizer.warmup_fraction = "linear", 0.04
    config.budget.unit, config.budget.amount = "seconds", 24 * 3600
    config.log_every_steps, config.eval_every_steps = 50, 1000
    config.checkpoint.save_interval_steps = 1000
    config.translation = evaluation.default_config()
    config.translation.bleu_examples = 500  # of newstest2013's 3,000, greedy, at every evaluation
    config.translation.max_length = 256
    return config
