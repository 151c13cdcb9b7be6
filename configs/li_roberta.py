"""Train Large, Then Compress: one point of the RoBERTa depth × width grid, a day of wall-clock time.

    python -m scaling.train --config=configs/li_roberta.py:l24-h1536 --workdir=...

The argument is `l{3,6,12,18,24}-h{256,512,768,1024,1536}` (default l12-h768).
"""

import re

from scaling.experiments import recipes


def get_config(arg: str = "l12-h768"):
    match = re.fullmatch(r"l(\d+)-h(\d+)", arg or "l12-h768")
    if not match:
        raise ValueError(f"configs/li_roberta.py:{arg}: use l<depth>-h<width>, e.g. l12-h768")
    return recipes.train_large_then_compress(int(match.group(1)), int(match.group(2)))
